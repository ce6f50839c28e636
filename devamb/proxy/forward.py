"""Streams one HTTP exchange to an upstream and back, never holding a whole body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from devamb.inspect.exchange import BodyPreview, WireFields
from devamb.proxy.connection import cut
from devamb.proxy.deadline import ClientStalled, Deadline, IdleBody
from devamb.proxy.errors import CutConnection, RetryableStatus, UpstreamFailed
from devamb.proxy.headers import request_lines, upstream_response_lines
from devamb.proxy.request import IDEMPOTENT, ClientGone, FrontRequest
from devamb.proxy.response import StreamResponse
from devamb.proxy.upstream import (
    BadResponse,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamPool,
    field_lines,
    request_head,
)
from devamb.proxy.websocket_client import WebSocketClient, is_websocket

if TYPE_CHECKING:
    from yarl import URL

    from devamb.inspect.exchange import Exchange


async def forward_http(
    pool: UpstreamPool,
    request: FrontRequest,
    url: URL,
    exchange: Exchange,
    *,
    extra_headers: Mapping[str, str],
    keep_host: bool,
    timeout: float,
    websockets: WebSocketClient,
    url_text: str | None = None,
) -> StreamResponse:
    """`url_text`: `url` as a string, when the caller has it (yarl's str() re-joins the parts)."""
    lines = request_lines(
        request.headers, client_ip=request.remote, keep_host=keep_host, extra=extra_headers,
        host=None if keep_host else url.raw_authority, memo=request.memo,
    )
    exchange.url = str(url) if url_text is None else url_text
    exchange.request_headers = WireFields(lines)  # one bytes object kept, not a pair each
    names = request.names  # (lowered)
    if "upgrade" in names and is_websocket(request):
        from devamb.proxy.websocket import relay_websocket  # on the first upgrade

        return await relay_websocket(
            websockets, request, url, CIMultiDict(WireFields(lines)), exchange, timeout)
    limits = exchange.limits
    if limits is not None:
        timeout = limits.timeout
    if request.body_exists or exchange.body_buffer is not None or "expect" in names:
        headers = CIMultiDict(WireFields(lines))  # (its own: the record's stays undecoded)
        body, chunked = await _request_body(request, headers, exchange)
        lines = field_lines(headers.items())  # framing headers may have changed
    else:
        body, chunked = None, False
    head = request_head(request.method, url.raw_path_qs, lines)
    conn = pool.idle() if body is None else None
    again = conn is None
    if conn is not None:  # the usual case: a kept-alive connection and nothing but the head
        try:  # (_exchange_head's first attempt, in this coroutine: one coroutine less)
            conn.send_head(head, timeout)  # (the head's timeout: the connection's timer)
            await conn.head_arrived()
        except BaseException as exc:
            _raise_failure(exc, pool, conn, None, timeout, url,
                           reusable=True, idempotent=request.method in IDEMPOTENT)
            again = True  # a stale kept-alive connection: once more, on a fresh one
    if again:
        conn = await _exchange_head(
            pool, head, body, chunked, timeout, url,
            limits.connect_timeout if limits is not None else None,
            request.method in IDEMPOTENT, retried=conn is not None,
        )
    assert conn is not None
    if limits is not None and limits.retry_statuses:
        status, _ = conn.head()  # (arrived: _exchange_head waited for it)
        if status in limits.retry_statuses:
            pool.discard(conn)
            raise RetryableStatus(status)
    try:
        # the response: a whole small one is sent in this step (the usual case), else streamed
        status, raw_headers = conn.head()  # (arrived: _exchange_head waited for it)
        exchange.ttfb_ms = (perf_counter() - exchange.started) * 1000  # (mark_first_byte)
        lines, length = upstream_response_lines(raw_headers)
        exchange.status = status
        exchange.response_headers = WireFields(lines)
        response = StreamResponse(status, lines=lines, length=length)
        whole = None if request.method == "HEAD" else conn.whole_body()
        if whole is None or not response.at_once(request):
            return await _relay_body(conn, request, exchange, response, whole)
        preview = exchange.response_body
        for chunk in whole:  # (one, nearly always)
            preview.add(chunk)
        try:
            if response.send_whole(request, whole):
                await request.connection.drain()
        except ConnectionResetError:
            exchange.error = "client went away"
        return response
    except BaseException:
        pool.discard(conn)
        raise
    finally:
        if request.method == "HEAD":
            pool.discard(conn)  # the parser cannot be told a HEAD response has no body
        else:
            pool.release(conn)


async def _request_body(
    request: FrontRequest, headers: CIMultiDict[str], exchange: Exchange
) -> tuple[AsyncIterator[bytes] | None, bool]:
    """The body to stream upstream (or None) and whether it must be chunk-framed."""
    if exchange.body_buffer is not None:  # read whole already, so that retries can resend it
        headers.popall("Expect", None)
        return _buffered(exchange.body_buffer), False
    if request.headers.get("Expect", "").lower() == "100-continue":
        headers.popall("Expect", None)
        await request.send_continue()
    if not request.body_exists:
        return None, False
    body = _count_in(request, exchange)
    chunked = "Content-Length" not in headers
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    return body, chunked


async def _exchange_head(
    pool: UpstreamPool,
    head: bytes,
    body: AsyncIterator[bytes] | None,
    chunked: bool,
    timeout: float,
    url: URL,
    connect_timeout: float | None = None,
    idempotent: bool = True,
    *,
    retried: bool = False,
) -> UpstreamConnection:
    """Send the request and wait for the response head.

    The response timeout starts once the request has been sent (Envoy's route timeout): a
    request body streams for as long as bytes keep moving, and only a pause of `timeout` in
    either direction ends it (408 when the client stalled, 504 when the upstream stopped
    reading). A keep-alive connection the upstream closed while idle fails at once; a request
    without a body is then sent once more on a fresh connection, as browsers do, if it is
    idempotent or provably never reached the upstream (nothing was written).
    """
    for _attempt in range(1 if retried else 2):
        conn: UpstreamConnection | None = None
        upload: IdleBody | None = None
        reused = False
        try:
            conn = pool.idle()  # a kept-alive connection: no connect, no waiting
            if conn is not None and body is None:  # nothing to wait for but the head
                reused = True
                conn.send_head(head, timeout)  # (the head's timeout: the connection's timer)
            else:
                with Deadline(timeout, None if conn is None else conn.loop) as deadline:
                    if conn is not None:
                        reused = True
                    elif connect_timeout is None:
                        conn, reused = await pool.acquire()
                    else:
                        try:
                            async with asyncio.timeout(connect_timeout):
                                conn, reused = await pool.acquire()
                        except TimeoutError:
                            raise OSError(
                                f"no connection within {connect_timeout:g}s") from None
                    if body is None:
                        conn.send_head(head)
                        conn.time_head(deadline.expires)  # the connect's time counts
                    else:
                        upload = IdleBody(body, deadline, timeout)
                        await conn.send(head, upload.chunks(), chunked)
                # the whole request is sent: the response's turn, `timeout` from now
                if body is not None:
                    conn.time_head(conn.loop.time() + timeout)  # type: ignore[union-attr]
            # (fails with TimeoutError when the head is not there in time: see time_head)
            await conn.head_arrived()
            return conn
        except BaseException as exc:
            _raise_failure(exc, pool, conn, upload, timeout, url,
                           reusable=reused and body is None, idempotent=idempotent)
    raise UpstreamFailed(502, "upstream-closed", "upstream closed the connection")


def _raise_failure(
    exc: BaseException, pool: UpstreamPool, conn: UpstreamConnection | None,
    upload: IdleBody | None, timeout: float, url: URL, *, reusable: bool, idempotent: bool,
) -> None:
    """Raise what `_failure` says an attempt that failed with `exc` raises; return when the
    request may go once more. No frame keeps what it raises in a local: the failure's
    traceback keeps the frames, and with them a reference cycle, which would hold the
    exchange until a full collection (tests/proxy/test_front_freed.py)."""
    error = _failure(exc, pool, conn, upload, timeout, url,
                     reusable=reusable, idempotent=idempotent)
    if error is None:
        return
    try:
        if error is exc:
            raise exc
        raise error from None
    finally:
        del error, exc


def _failure(
    exc: BaseException, pool: UpstreamPool, conn: UpstreamConnection | None,
    upload: IdleBody | None, timeout: float, url: URL, *, reusable: bool, idempotent: bool,
) -> BaseException | None:
    """What an attempt of sending a request and awaiting its response head that failed with
    `exc` raises: `exc` itself, the failure the client is told, or None when the request may
    go once more on a fresh connection (`reusable`: it went on a kept-alive one that the
    upstream turned out to have closed, and has no body). The attempt's connection is
    discarded (unless the error is none of the exchange's)."""
    if isinstance(exc, TimeoutError):
        if conn is not None:
            pool.discard(conn)
        return _timed_out(upload, timeout)
    if isinstance(exc, UpstreamClosed):
        pool.discard(conn)  # type: ignore[arg-type]
        if reusable and (idempotent or not exc.sent):
            return None
        if exc.code != "upstream-closed":  # a bastion's tunnel dropped under it
            return UpstreamFailed(502, exc.code, str(exc))
        return UpstreamFailed(502, "upstream-closed", "upstream closed the connection")
    if isinstance(exc, BadResponse):
        pool.discard(conn)  # type: ignore[arg-type]
        return UpstreamFailed(502, "bad-response", str(exc))
    if isinstance(exc, (CutConnection, ClientGone, asyncio.CancelledError)):
        if conn is not None:  # the client went away
            pool.discard(conn)
        return exc
    if isinstance(exc, OSError):
        if conn is not None:
            pool.discard(conn)
        reason = exc.strerror or str(exc) or type(exc).__name__
        return UpstreamFailed(  # "tunnel-down" when a bastion's SSH connection is down
            502, getattr(exc, "code", "connect-failed"),
            f"cannot connect to {url.host}:{url.port}: {reason}",
        )
    return exc


def _timed_out(upload: IdleBody | None, timeout: float) -> UpstreamFailed:
    """The failure for a timer that ran out: which side went quiet, and when."""
    if upload is None or upload.done:
        return UpstreamFailed(504, "timeout", f"no response within {timeout:g}s")
    if upload.on_client:
        return ClientStalled(timeout)
    return UpstreamFailed(
        504, "timeout", f"the upstream took no request body bytes for {timeout:g}s"
    )


async def _relay_body(
    conn: UpstreamConnection, request: FrontRequest, exchange: Exchange,
    response: StreamResponse, whole: list[bytes | memoryview] | None,
) -> StreamResponse:
    """The upstream's `response` whose body streams (or that a filter sees), sent."""
    preview = exchange.response_body
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    try:
        filtered = response.filtered  # (else `write_nowait`: `write` without its coroutines)
        if whole is not None:
            for chunk in whole:
                preview.add(chunk)
                if filtered:
                    await response.write(chunk)
                elif response.write_nowait(chunk):
                    await response.drain()
        elif filtered:
            async for chunk in conn.body():
                preview.add(chunk)
                await response.write(chunk)
                del chunk  # (a view of the connection's read buffer: let its next read reuse it)
        else:
            sink = _sink(conn, request, preview, response)
            conn.sink = sink
            try:
                async for chunk in conn.body():
                    preview.add(chunk)
                    if response.write_nowait(chunk):
                        conn.sink = None  # (the client's buffer is full: reads queue meanwhile)
                        await response.drain()
                        conn.sink = sink
                    del chunk  # (a view of the read buffer: let its next read reuse it)
            finally:
                conn.sink = None
        await response.write_eof()
    except (UpstreamClosed, BadResponse) as exc:
        exchange.error = f"upstream broke off the body: {exc}"
        _abort(request)
    except CutConnection as exc:  # a response filter ended the exchange
        exchange.error = exc.reason
        cut(request.transport, with_reset=exc.reset)
    except ConnectionResetError:
        exchange.error = "client went away"
    return response


def _sink(
    conn: UpstreamConnection, request: FrontRequest, preview: BodyPreview,
    response: StreamResponse,
) -> Callable[[bytes | memoryview], bool]:
    """What takes a counted body's reads from the upstream's read callback while the relay's
    task waits for them (`UpstreamConnection.sink`): each written on as the task would (the
    preview, `write_nowait`), without waking the task a read (~35k instructions a read of
    1 MiB in 256 KiB reads: a future, the task's step, the body generator). A client going
    away is left to the task: the read is queued and its write raises there."""

    def sink(chunk: bytes | memoryview) -> bool:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        preview.add(chunk)
        if response.write_nowait(chunk):
            conn.sink = None  # the client's buffer is full: later reads queue, the task drains
        return True

    return sink


async def _buffered(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _count_in(request: FrontRequest, exchange: Exchange) -> AsyncIterator[bytes]:
    body = exchange.request_body
    async for chunk in request.iter_body():
        body.add(chunk)
        yield chunk


def _abort(request: FrontRequest) -> None:
    """The status line is gone already: the only honest signal left is to cut the connection."""
    transport = request.transport
    if transport is not None:
        transport.abort()
