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
- Framing a proxy cannot pass on faithfully is refused as nginx does (see proxy.refusals); a
  refusal is reported to the server's `refused` hook (the listener records it).
- A client that goes away cancels its exchange's task, so a stalled upstream is let go.
- Keep-alive and pipelining: requests on one connection are answered in order, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from devamb.proxy.listen import create_server
from devamb.proxy.refusals import (
    Refusal,
    RefusalHook,
    check_head,
    refusal_body,
    refusal_for,
    shortened,
    too_large,
    too_long,
)
from devamb.proxy.request import ClientGone, FrontRequest
from devamb.proxy.response import Response, StreamResponse

__all__ = ["FrontProtocol", "FrontServer", "Handler", "Refusal", "RefusalHook"]

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
# the methods' names as every record shares them (a str each is 64 bytes a record kept)
_METHODS = {name.encode(): name for name in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")}
MAX_PIPELINED = 8  # requests parsed ahead of the one being answered before reading pauses
SWEEP_INTERVAL = 0.5  # seconds between checks of the connections' deadlines

Handler = Callable[[FrontRequest], Awaitable[StreamResponse]]


_INERT = httptools.HttpRequestParser(None)  # a lost connection's parser: it calls nothing back


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
        self._headers: list[tuple[bytes, bytes]] = []  # as parsed: decoded when checked
        # the last head's version, fields and checked headers: the next one is often the same
        self._last_head: tuple[
            str, list[tuple[bytes, bytes]], CIMultiDictProxy[str], frozenset[str], list[Any],
        ] | None = None
        # the last request target, as parsed and decoded: a client asking the same path again
        # (polling, health checks, a benchmark) gets the same str, which its records share
        self._last_url = b""
        self._last_target = ""
        self._in_head = False
        self._heads = 0  # request heads begun on this connection
        self._head_size = 0  # bytes of the current head's complete parts (line and headers)
        self._head_pending = 0  # bytes read while the head was incomplete, after its first read
        self._receiving: FrontRequest | None = None  # the request whose body is arriving
        self._lingering: FrontRequest | None = None  # answered; the rest of its body is dropped
        self._queue: deque[FrontRequest] = deque()
        # the connection's task: it answers the requests one at a time and waits for the next
        # between them (a task per request cost more than the rest of the front end's work)
        self._task: asyncio.Task[None] | None = None
        self._serving = False  # a request is being answered (else the task waits, or is none)
        self._arrived: asyncio.Future[FrontRequest] | None = None  # what the task waits on
        self.deadline = 0.0  # loop time after which the server's sweep closes us; 0: none
        self._pauses: set[str] = set()
        self._writable: asyncio.Future[None] | None = None
        self._refusal: Refusal | None = None
        self._upgraded: bytes | None = None  # bytes after an upgrade request's head
        self._detached = False
        self._closing = False  # answer what is in flight, then close
        self._body_read = 0  # body bytes of the request now arriving
        self._counted = 0  # its body bytes still due, counted off the reads (upstream.py's)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        self.server.connections.add(self)
        self._arm(self.header_timeout)  # from the accept: a silent connection is not kept

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if (self._refusal is not None or self._upgraded is not None or transport is None
                or transport.is_closing()):  # (_closing_now, inline: hot)
            return
        if self._counted:
            self._count_body(data)
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
                self._refusal = refusal_for(exc)
        if self._in_head and self._refusal is None:
            self._partial_head(data, began=self._heads != heads)
        receiving = self._receiving
        if (receiving is not None and receiving.content_length and self._refusal is None
                and self._upgraded is None and "transfer-encoding" not in receiving.names):
            self._counted = receiving.content_length - self._body_read  # (> 0: not complete)
        if self._refusal is not None:
            if self._receiving is not None:
                self._receiving.fail(ClientGone("the client's request stream is malformed"))
                self._receiving = None
            if not self._serving:
                self._refuse()
            else:
                self._pause("refused")  # answered once the request in flight is

    def _count_body(self, data: bytes) -> None:
        """A read of a body framed by Content-Length, past its head's read: passed on as it
        came, not through the parser (httptools copies each body piece into a new object);
        a fresh parser takes what follows the body."""
        due = self._counted
        if len(data) < due:
            self._counted = due - len(data)
            self.on_body(data)
            return
        self._counted = 0
        self.on_body(data if len(data) == due else data[:due])
        self._parser = httptools.HttpRequestParser(self)  # the old one still awaits the body
        self.on_message_complete()
        if len(data) > due:  # a pipelined request, or whatever the client sent after the body
            self.data_received(data[due:])

    def _partial_head(self, data: bytes, *, began: bool) -> None:
        """A head still incomplete after a read. The parser holds its unfinished line, which
        no callback has counted yet: the reads after the head's first one bound it."""
        if began:
            if self._heads > 1:  # the first head's timer runs from the accept
                self._arm(self.header_timeout)
            return
        self._head_pending += len(data)
        if self._head_pending > MAX_HEAD:
            self._refusal = too_long() if not self._headers and self._url else too_large()

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
        # The task and the parser refer to this protocol (its frame; its callbacks): let go
        # of both, so reference counting frees the connection, and what a cancelled exchange's
        # frame held (its record, views of the upstream's read buffers), as the task ends
        # rather than at a full collection, which the engine makes rare (engine/collector.py).
        task, self._task = self._task, None
        self._parser = _INERT
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
            raise too_long()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        if size > MAX_FIELD:
            raise too_large()
        self._head_size += size + 4  # ": " and CRLF
        headers = self._headers
        if self._head_size > MAX_HEAD or len(headers) >= MAX_HEADERS:
            raise too_large()
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.deadline = 0.0  # (_disarm, inline: hot)
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        if len(url) > MAX_URL:
            raise too_long()
        parser = self._parser
        version = parser.get_http_version()
        fields = self._headers
        last = self._last_head
        if last is not None and fields == last[1] and version == last[0]:
            # a client sends the same fields again and again: checked once, and what is made
            # from them kept with them
            _, _, headers, names, memo = last
        else:
            headers = CIMultiDictProxy(CIMultiDict(_decoded(fields)))
            check_head(version, headers)
            names = frozenset(map(str.lower, headers))
            memo = [None, None]
            self._last_head = (version, fields, headers, names, memo)
        if url == self._last_url:
            target = self._last_target
        else:
            self._last_url, target = url, url.decode("latin-1")
            self._last_target = target
        method = parser.get_method()
        request = FrontRequest(
            self,
            _METHODS.get(method) or method.decode("latin-1"),  # (one str a method, shared)
            target,
            (1, 0) if version == "1.0" else (1, 1),
            headers,
            self.remote,
            keep_alive=parser.should_keep_alive() and not self._closing,
            upgrade=parser.should_upgrade(),
            names=names,
            memo=memo,
        )
        if request.body_exists:
            self._receiving = request
            self._body_read = 0
        if not self._serving:  # (_start, inline: hot)
            self._serving = True
            arrived, self._arrived = self._arrived, None
            if arrived is not None and not arrived.done():  # the connection's task waits
                arrived.set_result(request)
            else:
                self._task = self.server.loop.create_task(self._serve(request))
        else:
            self._queue.append(request)
            if len(self._queue) >= MAX_PIPELINED:
                self._pause("pipelined")

    def on_body(self, body: bytes) -> None:
        self._body_read += len(body)
        if self._receiving is not None:
            self._receiving.feed(body)

    def on_message_complete(self) -> None:
        request = self._receiving
        if request is not None:
            request.feed_eof()
            self._receiving = None
            if request is self._lingering:
                self._lingering = None
                following = self._proceed()
                if following is not None:
                    self._start(following)

    # -- what requests and responses use (request.Connection) -------------------------------

    def pause_body(self) -> None:
        self._pause("body")

    def resume_body(self) -> None:
        self._resume("body")

    async def send(self, *parts: bytes | memoryview) -> None:
        """Write to the client, waiting while its socket buffer is full."""
        if self.write_now(parts):
            await self.drain()

    def write_now(self, parts: Sequence[bytes | memoryview]) -> bool:
        """`send` without waiting: write, and say whether the client's socket buffer is full
        (then `drain` before writing more)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientGone("client went away")
        if len(parts) == 1:
            transport.write(parts[0])
        else:
            transport.writelines(parts)
        return self._writable is not None

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

    def release(self) -> None:
        """The connection turned out not to be HTTP/1.1 (proxy/sniff.py): forget it."""
        self._detached = True
        self._disarm()
        self.server.connections.discard(self)
        self.transport = None

    # -- serving requests in order ---------------------------------------------------------

    def _start(self, request: FrontRequest) -> None:
        self._serving = True
        arrived, self._arrived = self._arrived, None
        if arrived is not None and not arrived.done():  # the connection's task waits for it
            arrived.set_result(request)
        else:  # (the server's loop: asyncio.get_running_loop() is a getpid() call on 3.11)
            self._task = self.server.loop.create_task(self._serve(request))

    async def _serve(self, request: FrontRequest) -> None:
        """The connection's task: each request answered in turn, then the next awaited. It
        ends with the connection (cancelled when the client goes away) or an upgrade."""
        while True:
            keep = False
            response: StreamResponse | None = None
            try:
                response = await self.server.handler(request)
                transport = self.transport
                if not (response.detached or self._detached or transport is None
                        or transport.is_closing()):
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
                log.exception("unhandled error serving %s %s", request.method,
                              request.raw_path[:200])
                if (response is None or not response.prepared) and not self._closing_now():
                    with contextlib.suppress(ConnectionError):
                        await Response(500, text="internal error").send(request)
            except BaseException:  # cancelled: the connection closes
                if not self._detached:
                    self._next(request, False)
                raise
            if self._detached:
                return
            following = self._next(request, keep)
            if following is None:
                if self._closing_now():
                    return
                del request, response  # not kept alive while the connection idles
                arrived = self._arrived = self.server.loop.create_future()
                following = await arrived  # (cancelled when the connection is lost)
            request = following

    def _next(self, done: FrontRequest, keep: bool) -> FrontRequest | None:
        """After `done` was answered: the next request to answer now, if one is waiting."""
        self._serving = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        if self._refusal is not None and not self._queue:
            self._refuse()
            return None
        if not keep or self._closing or done.upgrade:
            transport.close()
            return None
        if done.body_exists:
            done.discard_rest()  # unread body bytes: dropped, and the socket read again
            if not done.body_complete:
                # Answered before its body arrived (an error, a fault, a mock): read the rest
                # and drop it, as the client may still be sending; then the connection is
                # reusable.
                self._lingering = done
                self._arm(LINGER_TIMEOUT)
                return None
        return self._proceed()

    def _proceed(self) -> FrontRequest | None:
        """The next pipelined request (now being served), or None: wait for one."""
        if self._queue:
            request = self._queue.popleft()
            self._serving = True
            if len(self._queue) < MAX_PIPELINED:
                self._resume("pipelined")
            return request
        if self._in_head:  # a head begun while the last answer was sent: its timer starts
            self._arm(self.header_timeout)
        else:  # the keep-alive deadline, from the sweep's clock: it need not be precise
            self.deadline = self.server.now + self.keepalive_timeout
        return None

    def _refuse(self) -> None:
        refusal = self._refusal
        transport = self.transport
        assert refusal is not None
        if transport is None or transport.is_closing():
            return
        if self._url:
            refusal.path = shortened(b"".join(self._url).decode("latin-1"))
            with contextlib.suppress(httptools.HttpParserError):
                refusal.method = self._parser.get_method().decode("latin-1") or None
            refusal.headers = _decoded(self._headers)
        body = self.server.refused(refusal, self.remote)
        transport.write(refusal.answer(body))
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

    def _disarm(self) -> None:
        self.deadline = 0.0

    def timed_out(self) -> None:
        """Headers too slow, or idle too long between requests: either way, close."""
        self.deadline = 0.0
        if not self._serving and self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the response in flight."""
        self._closing = True
        if not self._serving and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()



def _decoded(fields: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header fields as text (latin-1, as HTTP/1.1 headers are)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in fields]


class FrontServer:
    """A listening socket and its connections."""

    def __init__(
        self, handler: Handler, refused: RefusalHook = refusal_body, *,
        ssl: SSLContext | None = None,
        connection: Callable[[FrontServer], asyncio.Protocol] | None = None,
    ) -> None:
        self.handler = handler
        self.refused = refused
        self.ssl = ssl  # the listener terminates TLS
        self.connection = connection  # what a new connection is (default: a FrontProtocol)
        self.connections: set[FrontProtocol] = set()
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()  # as of the last sweep
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._hurried = False  # a drain in progress ends now

    async def start(self, host: str, port: int, *, backlog: int = 1024) -> tuple[str, int]:
        make = self.connection
        self._server = await create_server(
            (lambda: make(self)) if make is not None else (lambda: FrontProtocol(self)),
            host, port, backlog=backlog, ssl=self.ssl,
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
        while self.connections and loop.time() < deadline and not self._hurried:
            await asyncio.sleep(0.05)
        cut = list(self.connections)
        for connection in cut:
            connection.abort()
        await asyncio.sleep(0)
        self._server = None
        return len(cut)

    def hurry(self) -> None:
        """End the drain of `stop` now: the exchanges still in flight are cut."""
        self._hurried = True

    def _sweep(self) -> None:
        """Close the connections whose deadline passed (header or keep-alive timeout)."""
        now = self.now = self.loop.time()
        for connection in [c for c in self.connections if 0.0 < c.deadline <= now]:
            connection.timed_out()
        interval = min(SWEEP_INTERVAL, FrontProtocol.header_timeout / 3)
        self._sweeper = self.loop.call_later(interval, self._sweep)
