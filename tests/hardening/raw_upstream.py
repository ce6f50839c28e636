"""A raw TCP upstream whose behaviour per connection the test sets; it tracks open connections
so a test can tell whether the engine closed its side."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawUpstream:
    """A TCP server whose behaviour per connection is set by the test; counts connections."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.open: set[asyncio.StreamWriter] = set()

    async def start(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open.add(writer)
        try:
            assert self.handler is not None
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.open):
            writer.transport.abort()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The request body framed by Content-Length or chunked; IncompleteReadError if cut."""
    lines = head.decode("latin-1").lower().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding") != "chunked":
        return b""
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if size == 0:
            return bytes(body)


async def all_closed(server: RawUpstream, timeout: float = 5.0) -> bool:
    """Whether every connection to `server` is closed within `timeout`."""
    for _ in range(int(timeout / 0.02)):
        if not server.open:
            return True
        await asyncio.sleep(0.02)
    return not server.open
