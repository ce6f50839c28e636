"""The client-facing HTTP/1.1 front end: an asyncio Protocol parsing with httptools.

aiohttp's server did this job first and cost about half of a proxied exchange's CPU time
(request objects, a task and a writer per request, general-purpose hooks); a proxy needs a lean
path from bytes to a handler and back. Guards a proxy facing arbitrary clients needs:

- A header timeout, as nginx's client_header_timeout: a connection's first request head must be
  complete within `header_timeout` seconds of the accept, a later one within `header_timeout`
  of its first byte; between requests the keep-alive idle applies. Slow-drip (slowloris) and
  silent connections cannot pile up.
- Limits, counted as the head is parsed whatever the reads' sizes: a request line over `MAX_URL`
  answers 414, a header over `MAX_FIELD`, a head over `MAX_HEAD` or more than `MAX_HEADERS`
  header lines 431 (Envoy's default count).
- Framing a proxy cannot pass on faithfully, answered as nginx does: no HTTP/1.x version 400,
  another version 505, a transfer coding other than `chunked` 501, an HTTP/1.1 request without
  `Host` or with two 400, anything else llhttp refuses (including Content-Length with
  Transfer-Encoding, the classic smuggling attempt) 400. Every refusal has `Connection: close`,
  an `x-devamb-error` code and no traceback, and is reported to the server's `refused` hook
  (the listener records it).
- A client that goes away cancels its exchange's task, so a stalled upstream is let go.
- Keep-alive and pipelining: requests on one connection are answered in order, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from devamb.proxy.request import ClientGone, FrontRequest
from devamb.proxy.response import REASONS, Response, StreamResponse

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
# An idle keep-alive connection is closed after this long. Longer than clients keep theirs
# (browsers 300 s, Go 90 s, aiohttp 15 s): a server closing first races a client reusing the
# connection, and the request caught in between fails without reaching any handler.
KEEPALIVE_TIMEOUT = 600.0
MAX_URL = 8190
MAX_FIELD = 8190
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100  # header lines in one request head (Envoy's max_headers_count default)
LINGER_TIMEOUT = 10.0  # how long the rest of an unread request body is read and dropped
MAX_PIPELINED = 8  # requests parsed ahead of the one being answered before reading pauses
SWEEP_INTERVAL = 0.5  # seconds between checks of the connections' deadlines

Handler = Callable[[FrontRequest], Awaitable[StreamResponse]]


class Refusal(Exception):
    """A request the front end answers itself, with `status` and `Connection: close`."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code  # short and stable, sent as x-devamb-error: bad-request, ...
        self.reason = reason
        self.method: str | None = None  # as far as the request was read
        self.path: str | None = None
        self.headers: list[tuple[str, str]] = []


# Records a refusal and gives the body to send with it (the listener's; see FrontServer).
RefusalHook = Callable[[Refusal, str | None], bytes]


def _too_large() -> Refusal:
    return Refusal(431, "request-header-too-large", "request header too large")


def _too_long() -> Refusal:
    return Refusal(414, "request-line-too-long", "request line too long")


class FrontProtocol(asyncio.Protocol):
    """One client connection."""

    header_timeout = HEADER_TIMEOUT
    keepalive_timeout = KEEPALIVE_TIMEOUT

    def __init__(self, server: FrontServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._in_head = False
        self._heads = 0  # request heads begun on this connection
        self._head_size = 0  # bytes of the current head's complete parts (line and headers)
        self._head_pending = 0  # bytes read while the head was incomplete, after its first read
        self._receiving: FrontRequest | None = None  # the request whose body is arriving
        self._lingering: FrontRequest | None = None  # answered; the rest of its body is dropped
        self._queue: deque[FrontRequest] = deque()
        self._task: asyncio.Task[None] | None = None
        self.deadline = 0.0  # loop time after which the server's sweep closes us; 0: none
        self._pauses: set[str] = set()
        self._writable: asyncio.Future[None] | None = None
        self._refusal: Refusal | None = None
        self._upgraded: bytes | None = None  # bytes after an upgrade request's head
        self._detached = False
        self._closing = False  # answer what is in flight, then close

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        self.server.connections.add(self)
        self._arm(self.header_timeout)  # from the accept: a silent connection is not kept

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self._upgraded is not None or self._closing_now():
            return
        heads = self._heads
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded = data[offset:]
            self._pause("upgrade")  # the handler decides what the rest of the bytes are
        except httptools.HttpParserError as exc:
            if self._refusal is None:
                self._refusal = _refusal_for(exc)
        if self._in_head and self._refusal is None:
            self._partial_head(data, began=self._heads != heads)
        if self._refusal is not None:
            if self._receiving is not None:
                self._receiving.fail(ClientGone("the client's request stream is malformed"))
                self._receiving = None
            if self._task is None:
                self._refuse()
            else:
                self._pause("refused")  # answered once the request in flight is

    def _partial_head(self, data: bytes, *, began: bool) -> None:
        """A head still incomplete after a read. The parser holds its unfinished line, which
        no callback has counted yet: the reads after the head's first one bound it."""
        if began:
            if self._heads > 1:  # the first head's timer runs from the accept
                self._arm(self.header_timeout)
            return
        self._head_pending += len(data)
        if self._head_pending > MAX_HEAD:
            self._refusal = _too_long() if not self._headers and self._url else _too_large()

    def eof_received(self) -> bool:
        """The client closed its side: like nginx, take it that the client gave up (a client
        that half-closes and still waits for the answer is rare; a gone one that keeps an
        upstream busy is not)."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.server.connections.discard(self)
        if self._receiving is not None:
            self._receiving.fail(ClientGone(str(exc) if exc else "client went away"))
            self._receiving = None
        self._queue.clear()
        task = self._task
        if task is not None and not task.done() and not self._detached:
            task.cancel()  # the client is gone: so is its exchange
        self._wake_writer()
        self.transport = None

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._heads += 1
        self._head_size = 16  # the request line's method, spaces, version and CRLF, about
        self._head_pending = 0
        self._url = []
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_size += len(url)
        if len(self._url) > 1 and sum(map(len, self._url)) > MAX_URL:
            raise _too_long()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        if size > MAX_FIELD:
            raise _too_large()
        self._head_size += size + 4  # ": " and CRLF
        headers = self._headers
        if self._head_size > MAX_HEAD or len(headers) >= MAX_HEADERS:
            raise _too_large()
        headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        url = b"".join(self._url)
        if len(url) > MAX_URL:
            raise _too_long()
        parser = self._parser
        version = parser.get_http_version()
        headers = CIMultiDictProxy(CIMultiDict(self._headers))
        _check_head(version, headers)
        request = FrontRequest(
            self,
            parser.get_method().decode("latin-1"),
            url.decode("latin-1"),
            (1, 0) if version == "1.0" else (1, 1),
            headers,
            self.remote,
            keep_alive=parser.should_keep_alive() and not self._closing,
            upgrade=parser.should_upgrade(),
        )
        if request.body_exists:
            self._receiving = request
        if self._task is None:
            self._start(request)
        else:
            self._queue.append(request)
            if len(self._queue) >= MAX_PIPELINED:
                self._pause("pipelined")

    def on_body(self, body: bytes) -> None:
        if self._receiving is not None:
            self._receiving.feed(body)

    def on_message_complete(self) -> None:
        request = self._receiving
        if request is not None:
            request.feed_eof()
            self._receiving = None
            if request is self._lingering:
                self._lingering = None
                self._proceed()

    # -- what requests and responses use (request.Connection) -------------------------------

    def pause_body(self) -> None:
        self._pause("body")

    def resume_body(self) -> None:
        self._resume("body")

    async def send(self, *parts: bytes) -> None:
        """Write to the client, waiting while its socket buffer is full."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientGone("client went away")
        if len(parts) == 1:
            transport.write(parts[0])
        else:
            transport.writelines(parts)
        if self._writable is not None:
            await self.drain()

    async def drain(self) -> None:
        while self._writable is not None:
            await asyncio.shield(self._writable)
            if self.transport is None:
                raise ClientGone("client went away")

    def detach(self, protocol: asyncio.Protocol) -> None:
        """Hand the connection to `protocol` (an upgrade): HTTP is over on it."""
        transport = self.transport
        assert transport is not None and self._upgraded is not None
        leftover, self._upgraded = self._upgraded, b""
        self._detached = True
        self._disarm()
        self.server.connections.discard(self)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)  # reading stays paused: the new owner resumes it
        if leftover:
            protocol.data_received(leftover)

    # -- serving requests in order ---------------------------------------------------------

    def _start(self, request: FrontRequest) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(request))

    async def _serve(self, request: FrontRequest) -> None:
        keep = False
        response: StreamResponse | None = None
        try:
            response = await self.server.handler(request)
            if response.detached or self._detached or self._closing_now():
                return
            if not response.prepared:
                if isinstance(response, Response):
                    await response.send(request)
                else:
                    await response.prepare(request)
                    await response.write_eof()
            elif not response.finished:
                await response.write_eof()
            keep = response.keep_alive
        except ConnectionError:
            pass  # the client went away while being answered
        except Exception:
            log.exception("unhandled error serving %s %s", request.method, request.raw_path[:200])
            if (response is None or not response.prepared) and not self._closing_now():
                with contextlib.suppress(ConnectionError):
                    await Response(500, text="internal error").send(request)
        finally:
            if not self._detached:
                self._next(request, keep)

    def _next(self, done: FrontRequest, keep: bool) -> None:
        self._task = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._refusal is not None and not self._queue:
            self._refuse()
            return
        if not keep or self._closing or done.upgrade:
            transport.close()
            return
        done.discard_rest()  # unread body bytes: dropped, and the socket read again
        if not done.body_complete:
            # Answered before its body arrived (an error, a fault, a mock): read the rest and
            # drop it, as the client may still be sending; then the connection is reusable.
            self._lingering = done
            self._arm(LINGER_TIMEOUT)
            return
        self._proceed()

    def _proceed(self) -> None:
        """Serve the next pipelined request, or wait for one."""
        if self._queue:
            self._start(self._queue.popleft())
            if len(self._queue) < MAX_PIPELINED:
                self._resume("pipelined")
        elif self._in_head:  # a head begun while the last answer was sent: its timer starts
            self._arm(self.header_timeout)
        else:
            self._arm_idle()

    def _refuse(self) -> None:
        refusal = self._refusal
        transport = self.transport
        assert refusal is not None
        if transport is None or transport.is_closing():
            return
        if self._url:
            refusal.path = _shortened(b"".join(self._url).decode("latin-1"))
            with contextlib.suppress(httptools.HttpParserError):
                refusal.method = self._parser.get_method().decode("latin-1") or None
            refusal.headers = self._headers
        body = self.server.refused(refusal, self.remote)
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"x-devamb-error: %s\r\nConnection: close\r\n\r\n%s" % (
                refusal.status, REASONS.get(refusal.status, "Unknown").encode(), len(body),
                refusal.code.encode(), body,
            )
        )
        if not transport.can_write_eof():
            transport.close()
            return
        # A lingering close, as nginx's: end our side, then read and drop what the client is
        # still sending for a while, so that its kernel does not answer our close with a reset
        # that destroys the answer before the client reads it.
        transport.write_eof()
        self._pauses.clear()
        transport.resume_reading()
        self._arm(LINGER_TIMEOUT)

    # -- helpers -------------------------------------------------------------------------------

    def _closing_now(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _pause(self, why: str) -> None:
        if not self._pauses and self.transport is not None:
            self.transport.pause_reading()
        self._pauses.add(why)

    def _resume(self, why: str) -> None:
        if why in self._pauses:
            self._pauses.discard(why)
            if not self._pauses and self.transport is not None and not self._detached:
                self.transport.resume_reading()

    def _wake_writer(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _arm(self, seconds: float) -> None:
        """Close the connection in `seconds` unless disarmed (checked by the server's sweep:
        a timer per request and connection would cost more than the rest of the front end)."""
        self.deadline = self.server.loop.time() + seconds

    def _arm_idle(self) -> None:
        """The keep-alive deadline, from the sweep's clock: it need not be precise."""
        self.deadline = self.server.now + self.keepalive_timeout

    def _disarm(self) -> None:
        self.deadline = 0.0

    def timed_out(self) -> None:
        """Headers too slow, or idle too long between requests: either way, close."""
        self.deadline = 0.0
        if self._task is None and self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the response in flight."""
        self._closing = True
        if self._task is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _check_head(version: str, headers: CIMultiDictProxy[str]) -> None:
    """Refuse what llhttp lets through but nginx does not (RFC 9112 framing rules)."""
    if version not in ("1.1", "1.0"):
        if version == "0.9":  # llhttp's reading of a request line without a version
            raise Refusal(400, "bad-request", "bad request: the request line has no HTTP/1.x "
                                              "version (HTTP/0.9 is not supported)")
        raise _unsupported_version(f"HTTP/{version}")
    if "Transfer-Encoding" in headers:
        codings = ",".join(headers.getall("Transfer-Encoding"))
        if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
            raise _not_implemented(codings)
        if version == "1.0":
            raise Refusal(400, "bad-request", "bad request: Transfer-Encoding in an HTTP/1.0 "
                                              "request")
    if "Host" in headers:
        if len(headers.getall("Host")) > 1:
            raise Refusal(400, "bad-request", "bad request: more than one Host header")
    elif version == "1.1":
        raise Refusal(400, "bad-request", "bad request: an HTTP/1.1 request without Host")


def _unsupported_version(version: str) -> Refusal:
    return Refusal(505, "http-version-not-supported",
                   f"{version} is not supported: devamb speaks HTTP/1.0 and HTTP/1.1")


def _not_implemented(codings: str | None) -> Refusal:
    given = f"Transfer-Encoding {codings[:100]!r}" if codings is not None else (
        "a Transfer-Encoding with more after chunked"
    )
    return Refusal(501, "transfer-coding-not-implemented",
                   f"{given}: only chunked alone is supported")


def _refusal_for(exc: httptools.HttpParserError) -> Refusal:
    cause = exc.__context__ or exc.__cause__
    if isinstance(cause, Refusal):
        return cause
    reason = str(exc)
    if reason == "Invalid HTTP version":  # well-formed HTTP/d.d, but neither 1.0 nor 1.1
        return _unsupported_version("this HTTP version")
    if reason == "Invalid `Transfer-Encoding` header value":  # chunked, then more codings
        return _not_implemented(None)
    if reason == "Pause on PRI/Upgrade":  # HTTP/2's preface, PRI * HTTP/2.0
        return _unsupported_version("HTTP/2 (prior knowledge)")
    return Refusal(400, "bad-request", f"bad request: {reason}")


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _refusal_body(refusal: Refusal, remote: str | None) -> bytes:
    """The body of a refusal when no hook is given."""
    return json.dumps({"error": refusal.code, "reason": refusal.reason}).encode()


class FrontServer:
    """A listening socket and its connections."""

    def __init__(self, handler: Handler, refused: RefusalHook = _refusal_body) -> None:
        self.handler = handler
        self.refused = refused
        self.connections: set[FrontProtocol] = set()
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()  # as of the last sweep
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int, *, backlog: int = 1024) -> tuple[str, int]:
        self._server = await self.loop.create_server(
            lambda: FrontProtocol(self), host, port, reuse_address=True, backlog=backlog
        )
        self._sweep()
        address = self._server.sockets[0].getsockname()
        return address[0], address[1]

    async def stop(self, grace: float) -> int:
        """Stop accepting, let in-flight exchanges finish within `grace` seconds, then close;
        returns how many connections were cut with an exchange still in flight."""
        if self._server is None:
            return 0
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        cut = list(self.connections)
        for connection in cut:
            connection.abort()
        await asyncio.sleep(0)
        self._server = None
        return len(cut)

    def _sweep(self) -> None:
        """Close the connections whose deadline passed (header or keep-alive timeout)."""
        now = self.now = self.loop.time()
        for connection in [c for c in self.connections if 0.0 < c.deadline <= now]:
            connection.timed_out()
        interval = min(SWEEP_INTERVAL, FrontProtocol.header_timeout / 3)
        self._sweeper = self.loop.call_later(interval, self._sweep)
