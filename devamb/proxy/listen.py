"""Binding listeners, with a bind failure that names the service and the port."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from devamb.profile.schema import ListenAddress

if TYPE_CHECKING:
    from ssl import SSLContext


class ListenError(Exception):
    def __init__(self, service: str, address: str, reason: str) -> None:
        super().__init__(f"service {service!r} cannot listen on {address}: {reason}")
        self.service = service
        self.address = address


def bind_failure(service: str, address: str, exc: OSError) -> ListenError:
    if exc.errno == errno.EADDRINUSE:
        reason = "the port is already in use by another process"
    elif exc.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = "no such address on this machine"
    else:
        reason = exc.strerror or str(exc)
    return ListenError(service, address, reason)


class Server(Protocol):
    """A front end that listens (the HTTP/1.1 and HTTP/2 ones)."""

    async def start(self, host: str, port: int) -> tuple[str, int]: ...


async def bind(server: Server, service: str, listen: ListenAddress) -> tuple[str, int]:
    """Start `server` on the service's listen address; the address it got. A bind that fails
    raises a ListenError that says why."""
    try:
        return await server.start(listen.host, listen.port)
    except OSError as exc:
        raise bind_failure(service, str(listen), exc) from None


def bound_socket(host: str, port: int) -> socket.socket | None:
    """A TCP socket bound to (host, port) as the loop's create_server binds one, when `host`
    is an IP address; None for a name. The loop would resolve even an address with
    getaddrinfo, which under uvloop starts libuv's four resolver threads: 0.45 MiB of an
    engine's RSS after start (issue 22)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock
    return None


async def create_server(
    factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, *,
    backlog: int = 100, ssl: SSLContext | None = None,
) -> asyncio.Server:
    """`loop.create_server(factory, host, port)`; an IP address is bound by `bound_socket`
    (a name, such as localhost, which may mean two addresses, is left to the loop)."""
    loop = asyncio.get_running_loop()
    sock = bound_socket(host, port)
    if sock is None:
        return await loop.create_server(factory, host, port, reuse_address=True,
                                        backlog=backlog, ssl=ssl)
    try:
        return await loop.create_server(factory, sock=sock, backlog=backlog, ssl=ssl)
    except BaseException:
        sock.close()
        raise
