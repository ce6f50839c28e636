"""Which listen addresses would fight over one socket, compared the way the kernel binds them.

`localhost:P` binds what localhost resolves to (127.0.0.1, often ::1 too); `0.0.0.0:P` takes
port P on every IPv4 address and `[::]:P` on every IPv6 one (listeners are IPv6-only
sockets, so the two families never overlap). A host name other than localhost is compared
as written: validation does not wait for DNS.
"""

from __future__ import annotations

import ipaddress
import socket

from devamb.profile.schema import ListenAddress

Bound = frozenset[tuple[int, str]]  # (IP version, address); version 0: an unresolved name
WILDCARDS = {4: "0.0.0.0", 6: "::"}


def bound_addresses(listen: ListenAddress) -> Bound:
    """The addresses a listener on `listen.host` binds."""
    host = listen.host.lower()
    literal = _ip(host)
    if literal is not None:
        return frozenset({literal})
    if host == "localhost" or host.endswith(".localhost"):
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except OSError:
            infos = []
        found = {ip for info in infos if (ip := _ip(str(info[4][0]))) is not None}
        if found:
            return frozenset(found)
    return frozenset({(0, host)})


def shared_address(mine: Bound, theirs: Bound) -> str | None:
    """An address both sets would bind (on the same port), or None when they can coexist."""
    for version, address in sorted(mine):
        for other_version, other in sorted(theirs):
            if version != other_version:
                continue
            if address == other:
                return address
            wildcard = WILDCARDS.get(version)
            if wildcard in (address, other):
                return other if address == wildcard else address
    return None


def _ip(text: str) -> tuple[int, str] | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return ip.version, str(ip)
