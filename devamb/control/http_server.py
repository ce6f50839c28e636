"""A small HTTP/1.1 server for the control socket: requests parsed by httptools, one at a time
per connection, answered whole (JSON, text) or as a chunked stream.

Only what the control API needs: no TLS, no compression, no upgrades; request bodies up to
MAX_BODY (aiohttp's default too). Local, owner-only socket: the peer is the user's own CLI, TUI
or script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

from devamb.control.reasons import reason

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


@dataclass
class Request:
    method: str
    path: str  # as sent (percent-encoded)
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    keep_alive: bool


@dataclass
class Reply:
    """A whole answer, or (`streaming`) the head of a chunked one the handler writes."""

    status: int
    content_type: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    streaming: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, "application/json; charset=utf-8", json.dumps(data).encode(),
                   headers or {})

    @classmethod
    def text(cls, text: str, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(200, "text/plain; charset=utf-8", text.encode(), headers or {})

    @classmethod
    def stream(cls, content_type: str) -> Reply:
        return cls(200, content_type, streaming=True)

    def head(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {reason(self.status)}",
                 f"Content-Type: {self.content_type}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.streaming:
            lines += ["Transfer-Encoding: chunked", "Connection: close"]
        else:
            lines.append(f"Content-Length: {len(self.body)}")
            if not keep_alive:
                lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Stream:
    """The body of a streamed answer, written chunk by chunk with the socket's backpressure."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def write(self, data: bytes) -> None:
        conn = self._connection
        if conn.closed:
            raise ConnectionResetError("the reader went away")
        conn.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))  # type: ignore[union-attr]
        await conn.can_write.wait()
        if conn.closed:
            raise ConnectionResetError("the reader went away")

    async def end(self) -> None:
        conn = self._connection
        if not conn.closed:
            conn.transport.write(b"0\r\n\r\n")  # type: ignore[union-attr]


App = Callable[[Request, Callable[[Reply], Stream]], Awaitable[Reply | None]]


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.worker: asyncio.Task[None] | None = None
        self.streaming = False
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._refuse(400, f"Bad Request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.can_write.set()
        self.server.connections.discard(self)
        if self.streaming and self.worker is not None:
            self.worker.cancel()  # a stream waits for its next item: nobody reads it any more

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", {}, [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            raise ValueError("too large")  # httptools raises HttpParserCallbackError
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        self._queue.append(Request(
            method=self._parser.get_method().decode("latin-1"),
            path=url.path.decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self._parser.should_keep_alive(),
        ))
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    # -- answering ----------------------------------------------------------------------------

    def _refuse(self, status: int, why: str) -> None:
        if self._size > MAX_BODY:
            status, why = 413, f"Request Entity Too Large: over {MAX_BODY // 1024} KiB"
        if self.worker is None and not self.closed:
            self._send(Reply.json({"error": why}, status), keep_alive=False)
        if self.transport is not None:
            self.transport.close()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        if not self.closed:
            self.transport.write(reply.head(keep_alive) + reply.body)  # type: ignore[union-attr]

    def _start_stream(self, reply: Reply) -> Stream:
        self.streaming = True
        self._send(reply, keep_alive=False)
        return Stream(self)

    async def _work(self) -> None:
        try:
            while self._queue and not self.closed:
                request = self._queue.popleft()
                try:
                    reply = await self.server.app(request, self._start_stream)
                except Exception as exc:
                    log.exception("control request %s %s failed", request.method, request.path)
                    reply = Reply.json({"error": f"internal error: {exc}"}, 500)
                if reply is not None and not self.streaming:
                    self._send(reply, request.keep_alive)
                if self.streaming or not request.keep_alive:
                    if self.transport is not None:
                        self.transport.close()
                    return
        finally:
            self.worker = None


class HttpServer:
    def __init__(self, app: App) -> None:
        self.app = app
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None

    async def listen_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), path)

    async def close(self, grace: float) -> None:
        """Stop accepting; let answers under way finish for up to `grace` seconds (streams
        never do), then cut what is left."""
        if self._server is not None:
            self._server.close()
            self._server = None
        busy = []
        for conn in list(self.connections):
            if conn.worker is None:
                if conn.transport is not None:
                    conn.transport.close()
            else:
                busy.append(conn.worker)
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
