"""Fewer writes on the bastion's socket: asyncssh writes each SSH packet on its own (and puts
an SSH_MSG_IGNORE packet before every data packet, a countermeasure meant for CBC ciphers), so
one channel write costs two `send` system calls. This wrapper joins what is written during one
turn of the event loop into one `send`: the same bytes in the same order, a turn later."""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._flush()  # a disconnect message asyncssh wrote just before goes out first
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, is_closing, pause_reading, …
        return getattr(self._transport, name)


def coalesce_writes(conn: Any) -> None:
    """Wrap an asyncssh connection's transport (its private `_transport`; left alone when a
    later asyncssh has none)."""
    transport = getattr(conn, "_transport", None)
    if transport is not None and hasattr(transport, "write"):
        conn._transport = CoalescingTransport(transport)
