"""Cutting a client's connection: a plain close, or a TCP reset (RST)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


def reset(transport: asyncio.WriteTransport | None) -> None:
    """Close with RST rather than FIN: linger on, timeout zero, then close."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cut(transport: asyncio.WriteTransport | None, *, with_reset: bool) -> None:
    if with_reset:
        reset(transport)
    elif transport is not None:
        transport.close()
