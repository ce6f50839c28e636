"""The control client's HTTP/1.1 over the engine's unix socket: one request per connection.

The control API is a handful of small JSON requests and two streams of JSON lines, from one
local process to another. A general HTTP client (aiohttp's) takes ~0.15 s to import, which was
most of a `devamb status`; this is what the client needs and no more: write one request, parse
the answer with httptools (llhttp, already the proxy's parser), hand the body over as it comes.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httptools


class Closed(Exception):
    """The engine closed the connection before its answer was complete."""


class Answer(asyncio.Protocol):
    """One response: the status once the head has arrived, then the body as it arrives."""

    def __init__(self) -> None:
        self.status = 0
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wake: asyncio.Future[None] | None = None
        self._complete = False
        self._error: Exception | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(Closed(f"not an HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._complete:
            self._end(Closed(str(exc) if exc else "the engine closed the connection"))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._poke()

    def on_message_complete(self) -> None:
        self._complete = True
        self._poke()

    # -- reading ------------------------------------------------------------------------------

    def _end(self, exc: Exception) -> None:
        self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises Closed if the connection ends before it does."""
        while True:
            while self._chunks:
                yield self._chunks.popleft()
            if self._complete:
                return
            if self._error is not None:
                raise self._error
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (the last one may lack its newline)."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for line in whole:
                yield line
        if pending:
            yield pending

    async def headed(self) -> Answer:
        """This answer once its head (the status) has arrived."""
        try:
            await self._head
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_answer(socket_path: Path, method: str, url: str, body: Any | None) -> Answer:
    """Connect and send one request (a JSON body when `body` is not None); the answer to come."""
    loop = asyncio.get_running_loop()
    _, answer = await loop.create_unix_connection(Answer, str(socket_path))
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {url} HTTP/1.1\r\nHost: devamb\r\nConnection: close\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(data)}\r\n\r\n"
    answer._transport.write(head.encode("latin-1") + data)  # type: ignore[union-attr]
    return answer
