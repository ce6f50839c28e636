"""A lean HTTP/1.1 client for the proxy's upstream side: a keep-alive pool per target.

aiohttp's client is general (cookies, redirects, auth, tracing) and costs most of a proxied
request's CPU time; the proxy needs none of that. Here a request is one write of ready bytes and
the response is parsed by httptools (llhttp, the parser Node.js uses) straight into a bounded
chunk buffer that pauses the socket when the client reads slowly.

A body framed by Content-Length that outlasts its head's read is counted rather than parsed:
httptools hands each body piece over as a new bytes object (a copy of every byte, on fresh
pages), where the read itself is already one. Its reads after the first are queued as they
came, and a fresh parser takes the next response.
"""

from __future__ import annotations

import asyncio
import math
import mmap
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from functools import partial
from itertools import chain
from sys import getrefcount
from weakref import WeakKeyDictionary, WeakSet

import httptools

from devamb.proxy import quickack
from devamb.proxy.dial import Dial, dial_with

READ_HIGH_WATER = 256 * 1024  # buffered response bytes before the upstream socket is paused
READ_LOW_WATER = 64 * 1024
# A read over SPLIT_OVER bytes that starts a response is parsed HEAD_PART bytes at a time until
# the head is whole; a body framed by Content-Length is counted off the rest (`_split_head`).
SPLIT_OVER = 64 * 1024
HEAD_PART = 4096
READ_BUFFER = 256 * 1024  # one read's buffer (a plain Protocol's reads are of 256000 bytes)
MAX_BUFFERS = 16  # read buffers a pool keeps (4 MiB, once large bodies have filled them)
MAX_IDLE = 64  # idle keep-alive connections kept per target
# The response head is held to the limits of the request side (front.py), as nginx and Envoy do
# for both: an upstream cannot make the engine buffer an endless head.
MAX_HEAD = 64 * 1024  # status line and headers, in all
MAX_HEADER_LINE = 8 * 1024  # one header's name and value
MAX_HEADERS = 100  # header fields in one head (Envoy's default)
EARLY = 0.001  # a timer may run this much before its time (libuv counts milliseconds)


class UpstreamClosed(Exception):
    """The upstream closed or reset the connection before the response was complete.

    `sent` says whether any of the request was written: when nothing was, the request provably
    never reached the upstream and may go again whatever its method.
    """

    def __init__(self, reason: str, *, sent: bool = True, code: str = "upstream-closed") -> None:
        super().__init__(reason)
        self.sent = sent
        self.code = code  # "tunnel-down" when a bastion's SSH connection dropped under it


class BadResponse(Exception):
    """The upstream's bytes are not a valid HTTP/1.1 response."""


class ReadBuffers:
    """Read buffers the connections of a pool share: anonymous mappings outside the C heap.

    A buffer is free again when no view of it lives (no chunk of it queued, or still held by
    the client's transport) and no read is filling it: its reference count says so. Most
    reads take the first one; a large body's reads queued behind a slow client take more, up
    to `limit` kept; past that a read gets a mapping of its own (unmapped with its last view).
    """

    __slots__ = ("__weakref__", "_clean", "_mark", "kept", "limit", "taken")

    def __init__(self, limit: int = MAX_BUFFERS) -> None:
        self.kept: list[mmap.mmap] = []
        self.limit = limit
        self.taken = 0  # reads given a buffer so far (`release` skips a pool still reading)
        self._mark = 0  # `taken` at the last `release`
        self._clean = False  # every kept buffer given back since the last read

    def take(self) -> mmap.mmap:
        """A buffer for the next read: the first kept one that is free, else `more`."""
        self.taken += 1
        for buffer in self.kept:
            if getrefcount(buffer) == FREE_REFS:  # no view of it lives, no read fills it
                return buffer
        return self.more()

    def more(self) -> mmap.mmap:
        """A new buffer: every kept one is in use."""
        buffer = _anonymous_map(READ_BUFFER)
        if len(self.kept) < self.limit:
            if not self.kept:  # (its loop's `release_read_buffers` sees it from now on)
                _register(self)
            self.kept.append(buffer)
        return buffer

    def release(self) -> int:
        """Give the pages of the kept buffers no read is using back to the system (they read
        as zeros until a read fills them again); returns how many. A pool that took a read
        since the last call is left as it is: it is still reading, and the next read would
        fault the pages back in at once (under HTTP 1 MiB c8 the tick gave back ~5 buffers a
        second that the next reads faulted in again, 64 faults each). So its buffers go at the
        first tick after its reads stop (0.5-1 s), and a pool given back whole is not
        advised again until it reads."""
        if self.taken != self._mark:
            self._mark, self._clean = self.taken, False
            return 0
        if self._clean:
            return 0
        released = 0
        for buffer in self.kept:
            if getrefcount(buffer) == FREE_REFS:  # no view of it lives, no read fills it
                _DONT_NEED(buffer)
                released += 1
        self._clean = released == len(self.kept)
        return released

    def __len__(self) -> int:
        return len(self.kept)


def _free_refs() -> int:
    """The reference count a kept buffer no one else holds shows in the loops below: its list's,
    the loop variable's and the call's on CPython 3.11-3.13, fewer where the interpreter borrows
    the call's (3.14 does for some loads). Measured with the same code shape, not assumed: a
    count one too high would only waste a buffer, one too low would reuse a buffer a queued
    chunk still views."""
    kept = [object()]
    for buffer in kept:
        return getrefcount(buffer)
    raise AssertionError("unreachable")


FREE_REFS = _free_refs()


def _anonymous_map(size: int) -> mmap.mmap:
    """Private anonymous memory (Windows' mmap takes no flags: its -1 maps are anonymous)."""
    if hasattr(mmap, "MAP_PRIVATE"):
        return mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return mmap.mmap(-1, size)


def _dont_need(buffer: mmap.mmap) -> None:
    buffer.madvise(mmap.MADV_DONTNEED)


# madvise where the system has it (Windows: the pages stay)
_DONT_NEED: Callable[[mmap.mmap], None] = (
    _dont_need if hasattr(mmap, "MADV_DONTNEED") else lambda _buffer: None)


# each loop's pools' read buffers (a buffer is only ever touched from its own loop's thread)
_LOOP_BUFFERS: WeakKeyDictionary[asyncio.AbstractEventLoop, WeakSet[ReadBuffers]] = (
    WeakKeyDictionary())


def _register(buffers: ReadBuffers) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a test's own reads): nothing would release them
        return
    _LOOP_BUFFERS.setdefault(loop, WeakSet()).add(buffers)


def release_read_buffers() -> int:
    """`ReadBuffers.release` for every pool of the running loop (the engine's tick: a burst of
    large responses leaves up to `MAX_BUFFERS` filled buffers a pool, 4 MiB, resident)."""
    pools = _LOOP_BUFFERS.get(asyncio.get_running_loop())
    return sum(buffers.release() for buffers in list(pools)) if pools else 0


class UpstreamConnection(asyncio.BufferedProtocol):
    """One connection to the upstream; carries one exchange at a time.

    Reads land in a buffer of the pool's (`get_buffer`, ReadBuffers), reused read after read:
    a large body's reads are queued as views of it, where a plain Protocol gets each read as a
    fresh bytes object of up to 256000 bytes from the C heap. Those came and went between the
    body previews the store keeps (64 KiB each), and the previews, carved out of their holes
    three at a time, left ~58 KiB slivers nothing reused: 13-15 MiB of a 90 MiB heap under
    bench/peak_rss.py's HTTP 1 MiB case (glibc's malloc_info). A small read (a whole small
    response) is copied out as bytes, as before.
    """

    def __init__(self, buffers: ReadBuffers | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffers = ReadBuffers() if buffers is None else buffers
        self._reading: mmap.mmap | None = None  # the buffer a read is filling
        self._tls = False  # (get_buffer hands out views)
        self._sock: object | None = None  # re-armed for TCP_QUICKACK (quickack.py)
        #: set by the body's relay while it waits for a read: takes a counted body's read
        #: that is not its last straight from the read's callback (True: taken, written on),
        #: so the relay's task is not woken for it; None, or False returned: queued as before
        self.sink: Callable[[bytes | memoryview], bool] | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[None] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False  # from the request's end to the end of the response head
        self._head_read = 0  # bytes read while in the head (a head that grows read by read)
        self._trailer_bytes = 0  # bytes of the trailers' lines (after a chunked body)
        self._trailers = 0  # trailer fields after a chunked body (dropped, but counted)
        self._chunks: deque[bytes | memoryview] = deque()  # views of a read buffer, or bytes
        self._buffered = 0
        self._body_read = 0  # body bytes of the response so far
        self._counted = -1  # body bytes still due, counted off reads (-1: the parser frames it)
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.keep_alive = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # The response head's deadline (`time_head`): one timer per connection, armed for the
        # earliest deadline it may have to meet and, when it runs and finds the head due later
        # (a later exchange's), armed again for then; an exchange costs a float, not a timer.
        self._expires = 0.0  # loop time by which the head is due (0: not timed)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when the timer runs (inf: none armed)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._sock = quickack.socket_of(transport)
        self._tls = transport.get_extra_info("sslcontext") is not None

    def get_buffer(self, sizehint: int) -> mmap.mmap | memoryview:
        """A free buffer; under TLS a view of it (asyncio's TLS reads fill a slice of what they
        are given, and an mmap's slice is a copy)."""
        buffer = self._reading = self._buffers.take()
        return memoryview(buffer) if self._tls else buffer

    def buffer_updated(self, nbytes: int) -> None:
        buffer, self._reading = self._reading, None
        if nbytes <= HEAD_PART:  # a small read (a whole small response): copied out as bytes,
            self.data_received(buffer[:nbytes])  # type: ignore[index]  # cheaper than a view
        else:  # (the view holds the buffer while a chunk of it is queued)
            self.data_received(memoryview(buffer)[:nbytes])  # type: ignore[arg-type]

    def data_received(self, data: bytes | memoryview) -> None:
        if self._counted > 0:
            self._count_body(data)
            return
        if self._in_head and len(data) > SPLIT_OVER:
            self._split_head(data)
            return
        if self._in_head:
            self._head_read += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own exception, if one raised
            why = cause if isinstance(cause, BadResponse) else BadResponse(
                f"invalid response from upstream: {exc}")
            self._fail(why)
            self.transport.abort()  # type: ignore[union-attr]
            return
        except httptools.HttpParserUpgrade:
            # WebSocket upgrades take their own client (websocket.py); here nobody asked.
            self._fail(BadResponse("the upstream switched protocols, though not asked to"))
            self.transport.abort()  # type: ignore[union-attr]
            return
        if self._in_head and self._head_read > MAX_HEAD:  # a head still growing, read by read
            self._fail(BadResponse(f"the upstream's response head is over {MAX_HEAD // 1024} KiB"))
            self.transport.abort()  # type: ignore[union-attr]
        elif not self._complete:
            if self._status and self._counted < 0 and self._error is None:
                self._counted = self._body_due()
            if self._sock is not None:
                quickack.arm(self._sock)  # more is due: do not let the upstream's Nagle wait

    def _split_head(self, data: bytes | memoryview) -> None:
        """A large read that starts a response: its first `HEAD_PART` bytes parsed, then the
        rest, which is counted rather than parsed when the head was in them and Content-Length
        frames the body (the parser would copy it out into a new bytes object, ~256 KiB on the
        heap for each large response). Smaller reads are parsed whole, as before: the body
        comes in one chunk, not two."""
        view = memoryview(data)
        self.data_received(view[:HEAD_PART])
        self.data_received(view[HEAD_PART:])

    def _body_due(self) -> int:
        """Body bytes still due when Content-Length frames the response (0: the parser goes
        on framing it: chunked, until close, or already whole)."""
        length = -1
        for name, value in self._headers:
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                return 0
            if len(name) == 14 and name.lower() == b"content-length":
                length = int(value)  # (llhttp checked it: digits, and one value)
        return max(0, length - self._body_read)

    def _count_body(self, data: bytes | memoryview) -> None:
        """A read of a body framed by Content-Length, past the head's read: queued as it came."""
        due = self._counted
        size = len(data)
        if size < due:
            self._counted = due - size
            sink = self.sink
            if sink is not None and not self._chunks and sink(data):  # written on already
                self._body_read += size
            else:
                self.on_body(data)  # queued for the relay's task
            if self._sock is not None:
                quickack.arm(self._sock)
            return
        self._counted = 0
        self.on_body(data if len(data) == due else data[:due])
        self.keep_alive = self._parser.should_keep_alive()  # (the head decides it)
        self._parser = httptools.HttpResponseParser(self)  # the old one still awaits the body
        self._complete = True
        self._wake()
        if len(data) > due:  # bytes past the response: the parser refuses them, as it would
            self.data_received(data[due:])

    def eof_received(self) -> bool:
        return False  # close; connection_lost decides whether the response was complete

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        headed = self._status and self._error is None  # a response head arrived whole
        if exc is None and headed and not self._complete and self._framed_by_close():
            self._complete = True
            self._wake()
        elif not self._complete:
            self._fail(UpstreamClosed(
                str(exc) if exc else "upstream closed the connection",
                code=getattr(exc, "code", "upstream-closed"),
            ))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete or self._head is None:
            # Bytes past the end of the response (a Content-Length shorter than the body, or
            # anything sent while idle) belong to no request: stop parsing, never reuse.
            raise BadResponse("bytes after the end of the response")
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._status:  # a trailer of a chunked body: not relayed, but bounded the same
            self._trailer(name, value)
        else:  # the head's limits are checked once it is whole (on_headers_complete)
            self._headers.append((name, value))

    def _trailer(self, name: bytes, value: bytes) -> None:
        self._trailers += 1
        self._trailer_bytes += len(name) + len(value) + 4  # ": " and CRLF
        _check_fields(name, len(name) + len(value), self._trailers, self._trailer_bytes)

    def on_headers_complete(self) -> None:
        self._in_head = False
        headers = self._headers
        # Checked once the head is whole rather than per header: it came in reads of at most a
        # socket buffer, and data_received bounds one that grows over several. A head within
        # reads of a line's limit in all (nearly every one) has no field to look at.
        if self._head_read > MAX_HEADER_LINE or len(headers) > MAX_HEADERS:
            count = len(headers)
            for name, value in headers:  # the header over the line limit, if one is
                _check_fields(name, len(name) + len(value), 0, 0)
            size = len(b"".join(chain.from_iterable(headers))) + 4 * count  # ": ", CRLF each
            _check_fields(b"", 0, count, size)
        self._head_read = 0
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real response follows
            self._headers = []
            return
        if status > 599 or status < 100:  # RFC 9110 §15: three digits, 1xx to 5xx
            raise BadResponse(f"the upstream answered status {status}, which is not HTTP")
        self._status = status
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def _framed_by_close(self) -> bool:
        """A response without length or chunking ends with the connection (worked out only
        when the connection ends: it is rare, and checking every response costs)."""
        names = {name.lower() for name, _ in self._headers}
        framed = b"content-length" in names or b"transfer-encoding" in names
        return not framed and self._status not in (204, 304)

    def on_body(self, body: bytes | memoryview) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self._body_read += len(body)
        if self._buffered > READ_HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        waiter = self._waiter  # (_wake, inline: hot)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if not self._status:  # the end of an informational response
            return
        self._complete = True
        self.keep_alive = self._parser.should_keep_alive()
        waiter = self._waiter  # (_wake, inline: hot)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- one exchange --------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
            self._head.exception()  # marks it retrieved: the exchange may be gone already
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_head(self, head: bytes, timeout: float | None = None) -> None:
        """Write a request's head (the whole of a request without a body): one write, no wait.
        `timeout`: the response head is due within it (`time_head`); None: not timed yet."""
        loop = self._loop  # (_loop_future, inline: hot)
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._head = loop.create_future()
        self._status, self._headers, self._complete = 0, [], False
        self._chunks.clear()
        self._buffered = self._body_read = 0
        self._counted = -1
        self._in_head, self._head_read, self._trailer_bytes, self._trailers = True, 0, 0, 0
        transport = self.transport
        assert transport is not None
        if self.closed:  # closed between connect and now: no response will ever come
            raise UpstreamClosed(
                "upstream closed the connection before the request was sent", sent=False
            )
        transport.write(head)
        if timeout is None:
            self._expires = 0.0
        else:  # (`time_head`, inline)
            expires = self._expires = loop.time() + timeout
            if expires < self._timer_at:
                self._arm_timer(expires)

    def time_head(self, expires: float) -> None:
        """The response head is due by the loop time `expires`: if it has not arrived by then,
        `head_arrived` fails with TimeoutError."""
        self._expires = expires
        if expires < self._timer_at:
            self._arm_timer(expires)

    def _arm_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._head_due)  # type: ignore[union-attr]

    def _head_due(self) -> None:
        self._timer, self._timer_at = None, math.inf
        head, expires = self._head, self._expires
        if head is None or head.done() or not expires:  # no head awaited, or not timed
            return
        if expires > self._loop.time() + EARLY:  # type: ignore[union-attr]  # a later one's
            self._arm_timer(expires)
            return
        head.set_exception(TimeoutError())

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this connection has sent on (None before its first request)."""
        return self._loop

    def _loop_future(self) -> asyncio.Future[None]:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.create_future()

    async def send(self, head: bytes, body: AsyncIterable[bytes] | None, chunked: bool) -> None:
        """Write the request; the head is one write, a body streams with backpressure."""
        self.send_head(head)
        if body is None:
            return
        transport = self.transport
        assert transport is not None
        async for chunk in body:
            if not chunk:
                continue
            if self.closed:
                raise UpstreamClosed("upstream closed the connection while the request was sent")
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if not self._can_write.is_set():
                await self._can_write.wait()
        if chunked:
            transport.write(b"0\r\n\r\n")

    def head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The response head, once `head_arrived` is done."""
        return self._status, self._headers

    def head_arrived(self) -> asyncio.Future[None]:
        """Done when the response head has arrived (then read it with `head`)."""
        assert self._head is not None
        return self._head

    async def body(self) -> AsyncIterator[bytes | memoryview]:
        """The response body as it arrives; raises UpstreamClosed if it breaks off."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < READ_LOW_WATER:
                    self._paused = False
                    self.transport.resume_reading()  # type: ignore[union-attr]
                yield chunk
                del chunk  # (a view of the read buffer: let the next read reuse it)
                continue
            if self._complete:
                return
            if self._error is not None:
                raise self._error
            self._waiter = waiter = self._loop_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def whole_body(self) -> list[bytes | memoryview] | None:
        """The whole body's reads if it has arrived already (so no waiting is needed), else
        None. Not joined: a large body that came in one go (several reads queued before the
        exchange ran) goes on in as many writes, without a copy."""
        if not self._complete or self._error is not None:
            return None
        chunks = self._chunks
        body = list(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        return body

    @property
    def reusable(self) -> bool:
        return self._complete and self.keep_alive and not self.closed and self._error is None


def _check_fields(name: bytes, line: int, count: int, size: int) -> None:
    """The limits of a response head (or of a chunked body's trailers): `line`, the length of
    the field `name`; `count` fields of `size` bytes in all."""
    if line > MAX_HEADER_LINE:
        raise BadResponse(
            f"the upstream sent a header over {MAX_HEADER_LINE // 1024} KiB "
            f"({name[:40].decode('latin-1')!r})"
        )
    if count > MAX_HEADERS:
        raise BadResponse(f"the upstream sent more than {MAX_HEADERS} headers")
    if size > MAX_HEAD:
        raise BadResponse(f"the upstream's response head is over {MAX_HEAD // 1024} KiB")


def tls_context(cafile: str | None, verify: bool) -> ssl.SSLContext:
    """The client TLS context of a target: verification on unless turned off, with an optional
    private CA. Made once per target (loading the CA store is slow)."""
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamPool:
    """Keep-alive connections to one host:port (TLS when `ssl_context` is set)."""

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, dial: Dial | None = None,
    ) -> None:
        self.host = host
        self.dial = dial  # None: loop.create_connection (see devamb.proxy.dial)
        self.port = port
        self.ssl_context = ssl_context
        self.server_name = host  # the name TLS checks (a pinned pool connects to an address)
        self._idle: deque[UpstreamConnection] = deque()
        self.buffers = ReadBuffers()  # its connections' reads land in these
        self._closed = False  # a retired target's pool: connections in flight close when done
        #: told each new connection's outcome (None: it opened), e.g. a target's Reachability
        self.observer: Callable[[BaseException | None], None] | None = None

    def idle(self) -> UpstreamConnection | None:
        """A kept-alive connection to reuse now, without waiting (None: `acquire` opens one)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                return conn
        return None

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused (a reused one may turn out to be stale)."""
        conn = self.idle()
        if conn is not None:
            return conn, True
        try:
            _, conn = await dial_with(self.dial)(
                partial(UpstreamConnection, self.buffers),
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.server_name if self.ssl_context else None,
            )
        except BaseException as exc:
            if self.observer is not None:
                self.observer(exc)
            raise
        if self.observer is not None:
            self.observer(None)
        return conn, False

    def release(self, conn: UpstreamConnection) -> None:
        if (conn._complete and conn.keep_alive and not conn.closed and conn._error is None
                and len(self._idle) < MAX_IDLE and not self._closed):  # (reusable, inline)
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def discard(self, conn: UpstreamConnection) -> None:
        if conn.transport is not None:
            conn.transport.abort()

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self.discard(self._idle.pop())


def field_lines(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header fields as a head's lines (`Name: value` joined by CRLF; latin-1, as HTTP/1.1
    headers are): what `request_head` writes and a record keeps (inspect.WireFields)."""
    return "\r\n".join(map(": ".join, headers)).encode("latin-1", "replace")  # one C loop


def request_head(method: str, target: str, lines: bytes) -> bytes:
    """The request line and the header `lines` (field_lines), ready to write."""
    line = f"{method} {target} HTTP/1.1\r\n".encode("latin-1", "replace")
    return line + lines + b"\r\n\r\n" if lines else line + b"\r\n"
