"""Faults and the deadline of one HTTP/2 call (a stream of an http2 or grpc service).

The listener (service/http2.py) makes one `H2Call` per stream once its target is picked: the
faults rolled for it (the same `FaultManager.roll_http` as HTTP/1, with the call's method,
:path and headers, so `match`, probability, times, after and for act alike) get to act before
the call goes on (`before`: abort, reset, timeout, down, latency), and the call's DATA goes
through the plan's shapers each way (bandwidth, slicer, limit_data, reset after N bytes,
per-message latency), its response headers wait for `latency on: response`, its end for
`slow_close`. A shaper's cut resets the stream (or, `scope: connection`, sends GOAWAY).

The call's deadline is the service's `timeout`, or the client's `grpc-timeout` when that is
shorter; a call devamb must end at its deadline gets a DEADLINE_EXCEEDED trailers-only answer
(gRPC) or a 504 (another HTTP/2 call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import aclosing

from devamb.faults.base import DOWNSTREAM, UPSTREAM, Fault, StreamCut
from devamb.faults.chain import Plan, ShaperChain, Shaping
from devamb.grpc.answers import grpc_timeout, trailers_only
from devamb.grpc.path import is_grpc
from devamb.grpc.status import CODES, name_of
from devamb.inspect.exchange import Exchange
from devamb.proxy.h2conn import (
    CANCEL,
    H2Headers,
    H2Stream,
    StreamGone,
    as_text,
    header,
    lookup,
)
from devamb.service.core import Service

GONE_POLL = 0.05  # seconds between looks at whether a held call's client gave up


class RequestTape:
    """A call's request DATA as it went upstream, kept up to `limit` bytes so another try can
    send it again; once it outgrows the limit it is dropped and the call cannot be retried."""

    __slots__ = ("chunks", "ended", "limit", "size", "trailers", "whole")

    def __init__(self, limit: int, ended: bool) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.whole = True  # everything sent so far is kept
        self.ended = ended  # the client's request ended (no body: at its headers)
        self.trailers: H2Headers | None = None

    def keep(self, data: bytes) -> None:
        if not self.whole:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.whole = False
            self.chunks = []
        else:
            self.chunks.append(data)

    def end(self, trailers: H2Headers | None) -> None:
        self.ended = True
        self.trailers = trailers


def request_view(headers: H2Headers) -> tuple[str, str, dict[str, str]]:
    """(method, path without its query, regular headers) for `match` and header faults."""
    method = header(headers, b":method") or ""
    path = (header(headers, b":path") or "").split("?", 1)[0]
    regular = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
               if not k.startswith(b":")}  # HTTP/2 names are lower case: .get finds them
    return method, path, regular


class H2Call:
    """One call as faults act on it (faults.base.Call), and the hooks its relay calls."""

    __slots__ = ("_down", "_up", "deadline", "exchange", "front", "grpc", "loop", "plan",
                 "service", "shaping", "tape", "timeout")

    def __init__(self, service: Service, front: H2Stream, headers: H2Headers,
                 exchange: Exchange, plan: Plan | None,
                 get: Callable[[bytes], str | None] | None = None) -> None:
        """`get`: the headers' look-up, if the caller has it (h2conn.lookup)."""
        self.service = service
        self.front = front
        self.exchange = exchange
        if get is None:
            get = lookup(headers)
        self.grpc = is_grpc(get(b"content-type"))
        self.loop = front.endpoint._loop  # (asyncio.get_running_loop: a getpid system call)
        timeout = service.spec.timeout
        asked = grpc_timeout(get(b"grpc-timeout")) if self.grpc else None
        if asked is not None and asked < timeout:
            timeout = asked
        self.timeout = timeout
        self.deadline = self.loop.time() + timeout
        self.plan = plan
        self.shaping: Shaping | None = plan.shaping() if plan is not None else None
        self._down: ShaperChain | None = None
        self._up: ShaperChain | None = None
        if self.shaping is not None:
            self._down = self._chain(DOWNSTREAM)
            self._up = self._chain(UPSTREAM)
        self.tape: RequestTape | None = None  # the request kept for another try (h2_retry.py)

    def _chain(self, direction: str) -> ShaperChain | None:
        shaping = self.shaping
        if shaping is None:
            return None
        faults = shaping.down if direction == DOWNSTREAM else shaping.up
        return ShaperChain([f.call_shaper(direction, self) for f in faults]) if faults else None

    def left(self) -> float:
        """Seconds until the call's deadline (at least a little, so a wait can time out)."""
        return max(0.001, self.deadline - self.loop.time())

    # -- before the call goes on --------------------------------------------------------------

    async def before(self) -> bool:
        """Let the fired faults act; True when one answered or ended the call."""
        if self.plan is None:
            return False
        for fault in self.plan.fired:
            if await fault.before_call(self):
                return True
        return False

    # -- what faults do (faults.base.Call) ----------------------------------------------------

    async def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        out: H2Headers = [(b":status", str(status).encode())]
        out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        out.append((b"content-length", str(len(body)).encode()))
        exchange = self.exchange
        exchange.status = status
        exchange.response_headers = as_text(out)
        exchange.response_body.add(body)
        await self.first_byte()
        exchange.mark_first_byte()
        self.front.send_headers(out, end=not body)
        if body:
            await self.send_down(body, end=True)

    async def answer_grpc(self, code: int, message: str, headers: dict[str, str]) -> None:
        out = trailers_only(code, message, headers)
        exchange = self.exchange
        exchange.status = 200
        exchange.response_headers = as_text(out)
        if code != 0:
            exchange.error = exchange.error or f"gRPC {name_of(code)}: {message}"
        await self.first_byte()
        exchange.mark_first_byte()
        self.front.send_headers(out, end=True)

    def reset(self, code: int, reason: str) -> None:
        self.exchange.error = reason
        self.front.reset(code)

    def goaway(self, code: int, reason: str) -> None:
        self.exchange.error = reason
        endpoint = self.front.endpoint
        with contextlib.suppress(Exception):  # (h2 refuses a second GOAWAY: it is closing)
            endpoint.conn.close_connection(error_code=code)
            endpoint.flush_now()  # before the close: flush() waits for the turn
        if endpoint.transport is not None:
            endpoint.transport.close()  # the GOAWAY leaves first: a close flushes the buffer

    async def delay(self, seconds: float) -> bool:
        ctx = self.service.faults.ctx
        return await self._race(ctx.sleep(seconds)) == "released"

    async def hold(self, fault: Fault) -> str:
        return await self._race(fault.hold())

    async def _race(self, wait: Awaitable[object]) -> str:
        """`wait` against the call's deadline and its client: "released" (it finished with a
        true value or None), "expired" (False), "deadline" (answered here) or "gone"."""
        held = asyncio.ensure_future(wait)
        gone = self.loop.create_task(self._gone())
        try:
            done, _ = await asyncio.wait({held, gone}, timeout=self.left(),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (held, gone):
                task.cancel()
        if held in done and not held.cancelled():
            return "expired" if held.result() is False else "released"
        if gone in done:
            self.exchange.error = self.exchange.error or "the client gave up on the call"
            return "gone"
        with contextlib.suppress(StreamGone):
            await self.answer_deadline()
        return "deadline"

    async def _gone(self) -> None:
        while self.front.gone is None:
            await asyncio.sleep(GONE_POLL)

    async def answer_deadline(self) -> None:
        """The call's deadline passed before it was answered."""
        why = f"no response within the call's deadline ({self.timeout:g}s)"
        if self.grpc:
            await self.answer_grpc(CODES["DEADLINE_EXCEEDED"], why, {})
        else:
            body = f"devamb: {self.service.name}: {self.exchange.target}: {why}\n".encode()
            await self.answer(504, {"content-type": "text/plain; charset=utf-8"}, body)
        self.exchange.error = why

    # -- the relay's hooks ----------------------------------------------------------------------

    async def first_byte(self) -> None:
        """Before the response headers go to the client."""
        if self.shaping is not None:
            await self.shaping.before_first_byte()

    async def send_down(self, data: bytes, end: bool = False, more: bool = False) -> None:
        """Response DATA to the client, through the shapers (END_STREAM after `end` hooks).
        `more`: the caller sends what follows before it yields to the loop (send_now's)."""
        front = self.front
        chain, shaping = self._down, self.shaping
        if shaping is None or (chain is None and not (end and shaping.end)):
            # (at once when the windows allow; `more` only unshaped: a shaped end may wait)
            if not front.send_now(data, end, more and shaping is None):
                await front.send_data(data, end=end)
            return
        try:
            if chain is None:
                await front.send_data(data)
            else:
                async with aclosing(chain.feed(data)) as pieces:
                    async for piece in pieces:
                        await front.send_data(piece)
            if end:
                await self.before_end()
                await front.send_data(b"", end=True)
        except StreamCut as exc:
            self._cut(exc)

    def send_down_now(self, data: bytes, end: bool = False, more: bool = False) -> bool:
        """`send_down` at once (no coroutine), when no fault shapes the call and the client's
        windows and transport take `data` now; False (nothing sent) otherwise."""
        return self.shaping is None and self.front.send_now(data, end, more)

    async def before_end(self) -> None:
        """Before the response ends (its trailers, or END_STREAM): what shapers held back,
        then slow_close."""
        if self.shaping is None:
            return
        chain = self._down
        if chain is not None:
            try:
                async with aclosing(chain.finish()) as pieces:
                    async for piece in pieces:
                        await self.front.send_data(piece)
            except StreamCut as exc:
                self._cut(exc)
        await self.shaping.before_end()

    async def send_up(self, back: H2Stream, data: bytes) -> None:
        """Request DATA to the upstream, through the shapers; a cut resets both streams."""
        if self.tape is not None:
            self.tape.keep(data)
        chain = self._up
        if chain is None:
            await back.send_data(data)
            return
        try:
            async with aclosing(chain.feed(data)) as pieces:
                async for piece in pieces:
                    await back.send_data(piece)
        except StreamCut as exc:
            back.reset(CANCEL)
            self._cut(exc)

    def send_up_now(self, back: H2Stream, data: bytes, end: bool = False) -> bool:
        """`send_up` (and `end_up` when `end`) at once, when no shaper acts on the request and
        the upstream's windows take `data` now; False (nothing done) otherwise."""
        if self._up is not None or not back.send_now(data, end):
            return False
        tape = self.tape
        if tape is not None:
            if data:
                tape.keep(data)
            if end:
                tape.end(None)
        return True

    async def end_up(self, back: H2Stream, trailers: H2Headers | None = None) -> None:
        """The request ended (with `trailers`, or END_STREAM on an empty DATA)."""
        if self.tape is not None:
            self.tape.end(trailers)
        if trailers is not None:
            back.send_trailers(trailers)
        else:
            await back.send_data(b"", end=True)

    def _cut(self, exc: StreamCut) -> None:
        if exc.connection:
            self.goaway(exc.code, exc.reason)
        else:
            self.reset(exc.code, exc.reason)
        raise StreamGone(exc.code, exc.reason)
