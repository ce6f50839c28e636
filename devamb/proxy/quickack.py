"""Acknowledge an upstream's bytes at once, so that its Nagle algorithm does not hold the rest.

An upstream that writes a response in two sends (head, then body) without TCP_NODELAY, as
Python's `http.server` does on a keep-alive connection, holds the second send until the first
is acknowledged; Linux delays that acknowledgement up to 40 ms on a connection it deems
interactive. Every such response would take 40 ms longer through the proxy than the upstream
needs. Setting TCP_QUICKACK after a read that left the response incomplete sends the pending
ACK now (Linux clears the option by itself, so it is set again after each such read). A
response that arrives in one read, the common case, costs nothing.

Only Linux has TCP_QUICKACK (macOS and the BSDs do not: there `arm` does nothing, and the
stall is the upstream's to fix with TCP_NODELAY, as it is for any client).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def socket_of(transport: asyncio.BaseTransport) -> Any | None:
    """The socket to re-arm on, or None where the platform has no TCP_QUICKACK (or the
    transport has no TCP socket of its own, e.g. a channel of an SSH tunnel)."""
    if _QUICKACK is None:
        return None
    sock = transport.get_extra_info("socket")  # None, or not a TCP socket, through a tunnel
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def arm(sock: Any) -> None:
    """Acknowledge what was read now, and the next read too."""
    with contextlib.suppress(OSError):  # closed under us: nothing is left to acknowledge
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
