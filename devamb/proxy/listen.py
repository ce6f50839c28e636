"""Binding listeners, with a bind failure that names the service and the port."""

from __future__ import annotations

import errno
from typing import Protocol

from devamb.profile.schema import ListenAddress


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
