"""One request as the client-facing front end parsed it: head at once, body as it arrives.

The front end (front.py) fills it from httptools callbacks; targets read it. The body is a
bounded chunk buffer: past `BODY_HIGH` buffered bytes the client's socket stops being read until
the target catches up, so a large upload never sits whole in memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

if TYPE_CHECKING:
    from devamb.proxy.filters import BodyFilter, ResponseFilter
    from devamb.proxy.websocket_shape import FrameShaping

BODY_HIGH = 256 * 1024  # buffered request-body bytes before the client socket is paused
BODY_LOW = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: methods that may be sent again after a failure (RFC 9110 §9.2.2)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


# the chunks of a request without a body: one empty queue they all share, which stays empty
# (what is added to it is dropped: maxlen 0), instead of a queue each
_NO_BODY: deque[bytes] = deque(maxlen=0)


class ClientGone(ConnectionResetError):
    """The client closed or reset its connection before its request body ended."""


class Connection(Protocol):
    """What requests and responses need of the connection they are on (front.FrontProtocol)."""

    transport: asyncio.Transport | None

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...

    async def send(self, *parts: bytes | memoryview) -> None: ...

    def write_now(self, parts: Sequence[bytes | memoryview]) -> bool: ...

    async def drain(self) -> None: ...

    def detach(self, protocol: asyncio.Protocol) -> None: ...


class RequestHead:
    """What routing keys read of a request's head, HTTP/1.1 or HTTP/2 (`h2request.H2Request`):
    the path, the query and the cookies, from `raw_path` and `headers`."""

    __slots__ = ()
    raw_path: str
    headers: CIMultiDictProxy[str]

    @cached_property
    def path(self) -> str:
        """The path, percent-decoded, without the query."""
        return unquote(self.raw_path.partition("?")[0])

    @cached_property
    def query(self) -> MultiDictProxy[str]:
        query = self.raw_path.partition("?")[2]
        if not query:
            return MultiDictProxy(MultiDict())
        from yarl import URL  # routing keys on the query: not every engine (issue 22: RSS)

        return URL.build(path="/", query_string=query, encoded=True).query

    @cached_property
    def cookies(self) -> Mapping[str, str]:
        from http.cookies import SimpleCookie  # mock routes matching cookies: not every engine

        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.getall("Cookie", ()):  # HTTP/2 may split them per pair
            try:
                jar.load(header)
            except Exception:  # a malformed cookie header: ignore it, as browsers do
                continue
        return {name: morsel.value for name, morsel in jar.items()}


class FrontRequest(RequestHead):
    __slots__ = (
        "__dict__", "_body_done", "_buffered", "_chunks", "_continue_sent", "_discard", "_error",
        "_paused", "_waiter", "body_exists", "body_filter", "connection", "content_length",
        "frame_shaping", "headers", "keep_alive", "memo", "method", "names", "raw_path", "remote",
        "response_filter", "upgrade", "version",
    )

    def __init__(
        self,
        connection: Connection,
        method: str,
        raw_path: str,
        version: tuple[int, int],
        headers: CIMultiDictProxy[str],
        remote: str | None,
        *,
        keep_alive: bool = True,
        upgrade: bool = False,
        names: frozenset[str] | None = None,
        memo: list[Any] | None = None,
    ) -> None:
        self.connection = connection
        self.method = method
        self.raw_path = raw_path  # as sent: percent-encoded, with the query
        self.version = version
        self.headers = headers
        self.remote = remote
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        # the fields' names, lowered: whether a field is there, asked without the multidict
        # (its lookup lowers the name each time); the front end's are made once a head
        if names is None:
            names = frozenset(map(str.lower, headers))
        self.names = names
        # what is made from the fields once, kept for the next request with the same ones (the
        # front end's, per connection: proxy.headers.request_lines); None: not kept
        self.memo = memo
        length = headers.get("Content-Length") if "content-length" in names else None
        self.content_length = int(length) if length is not None and length.isdigit() else None
        chunked = "transfer-encoding" in names
        self.body_exists = body = chunked or bool(self.content_length)
        self._chunks: deque[bytes] = deque() if body else _NO_BODY
        self._buffered = 0
        self._body_done = not self.body_exists
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._continue_sent = False
        self._discard = False
        # what the service installed around this exchange's bytes (proxy/filters.py)
        self.body_filter: BodyFilter | None = None
        self.response_filter: ResponseFilter | None = None
        self.frame_shaping: FrameShaping | None = None  # a WebSocket's faults, after the 101

    def __repr__(self) -> str:
        return f"<FrontRequest {self.method} {self.raw_path[:80]}>"

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.connection.transport

    @property
    def body_complete(self) -> bool:
        """The whole body has arrived (it may still sit in the buffer)."""
        return self._body_done

    def with_headers(self, headers: CIMultiDict[str]) -> FrontRequest:
        """The same request with other headers, for one whose body was read whole already
        (the clone's own body stream is empty)."""
        clone = FrontRequest(
            self.connection, self.method, self.raw_path, self.version, CIMultiDictProxy(headers),
            self.remote, keep_alive=self.keep_alive, upgrade=self.upgrade,
        )
        clone._body_done = True
        clone._continue_sent = True
        clone.body_filter = self.body_filter
        clone.response_filter = self.response_filter
        clone.frame_shaping = self.frame_shaping
        return clone

    # -- the body, fed by the front end ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._discard:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_HIGH and not self._paused:
            self._paused = True
            self.connection.pause_body()
        self._wake()

    def discard_rest(self) -> None:
        """Nobody will read the rest of the body: drop it as it arrives."""
        self._discard = True
        self._chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self.connection.resume_body()

    def feed_eof(self) -> None:
        self._body_done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._body_done:
            self._error = error
            self._body_done = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the body, read by a target -------------------------------------------------------------

    def iter_body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (through the body filter, if the service installed
        one); raises ClientGone if the client leaves mid-body."""
        body = self._arriving()
        return body if self.body_filter is None else self.body_filter.wrap(body)

    async def _arriving(self) -> AsyncIterator[bytes]:
        chunks = self._chunks
        while True:
            if chunks:
                data = chunks.popleft()
                self._buffered -= len(data)
                if self._paused and self._buffered < BODY_LOW:
                    self._paused = False
                    self.connection.resume_body()
                yield data
            elif self._error is not None:
                raise self._error
            elif self._body_done:
                return
            else:
                await self._wait()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.iter_body()])

    async def send_continue(self) -> None:
        """Answer `Expect: 100-continue` once, when the client asked for it."""
        if self._continue_sent or self._body_done:
            return
        if self.headers.get("Expect", "").lower() != "100-continue":
            return
        self._continue_sent = True
        transport = self.connection.transport
        if transport is not None and not transport.is_closing():
            transport.write(CONTINUE)

