"""The TCP relay's path for targets that speak the client's protocol themselves.

A target with `terminates_tcp` (the Redis sharding proxy) is handed the client's stream
(`ClientChunks`) instead of an address to connect to. Faults that fired for the connection
still apply: what the client sends reaches the target through the upstream shapers
(`_ShapedReader`), and what the target writes reaches the client through a `ShapedFlow` with
the downstream ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from devamb.faults.base import Stream
from devamb.proxy.connection import cut
from devamb.proxy.errors import CutConnection
from devamb.service.tcp_flow import ShapedFlow
from devamb.targets.base import ClientReader, Target, TargetUnavailable

if TYPE_CHECKING:
    from devamb.inspect.exchange import BodyPreview, Exchange
    from devamb.service.tcp import _Relay, _Side

READ_CHUNK = 64 * 1024  # what a shaped reader takes from the client's stream at a time
HIGH_WATER = 2 << 20  # the client's unread bytes before its socket is paused (StreamReader's)


class ClientChunks:
    """The client's bytes as the target reads them: the reads as they came, without the
    copies and checks of an `asyncio.StreamReader` (its buffer joins every read and copies
    each one out again); the socket paused while a slow target leaves too much unread."""

    __slots__ = ("_buffered", "_chunks", "_eof", "_loop", "_paused", "_transport", "_waiter",
                 "take")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.take: Callable[[bytes], bool] | None = None  # see `HandingReader`
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def feed_data(self, data: bytes) -> None:
        take = self.take
        if take is not None and self._waiter is not None and not self._chunks and take(data):
            return  # served by the target, whose task waits in `read` for more
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed_eof(self) -> None:
        self._eof = True
        self.take = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """The target reads no more: the next `read` returns b"" (see `HandingReader`)."""
        self.feed_eof()

    async def read(self, n: int = -1) -> bytes:
        """The next read's bytes (at most `n`); b"" once the client has closed."""
        chunks = self._chunks
        while not chunks:
            if self._eof:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = chunks.popleft()
        if 0 <= n < len(data):
            chunks.appendleft(data[n:])
            data = data[:n]
        self._buffered -= len(data)
        if self._paused and self._buffered <= HIGH_WATER // 2:
            self._paused = False
            self._transport.resume_reading()
        return data


async def serve_terminating(relay: _Relay, client: _Side, target: Target) -> None:
    """Hand the client's stream to a target that speaks its protocol itself, through the
    connection's shapers when faults fired."""
    reader = ClientChunks(client.transport)  # type: ignore[arg-type]
    client.reader, client.can_write = reader, asyncio.Event()
    client.can_write.set()
    client.settle()  # its chunks go to the target's reader
    for data in client.early:
        reader.feed_data(data)
    client.early.clear()
    if client.eof:
        reader.feed_eof()
    client.transport.resume_reading()  # type: ignore[union-attr]
    shaping = relay.shaping
    shaped = None
    if shaping is not None and shaping.up:
        shaped = _ShapedReader(reader, shaping.upstream)
    source: ClientReader = reader if shaped is None else shaped
    flow = None
    if shaping is not None and shaping.down:
        flow = ShapedFlow(relay, None, client, shaping.downstream)
    stream = _ClientStream(client, relay.exchange, flow)
    try:
        await target.serve_tcp(source, stream, relay.exchange)
        if flow is not None:  # what the target wrote still has to go through the shapers
            flow.feed_eof()
            await flow.task
    except CutConnection as exc:  # an upstream shaper cut the connection
        relay.exchange.error = exc.reason
        cut(client.transport, with_reset=exc.reset)
    except TargetUnavailable as exc:
        relay.exchange.error = exc.reason
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            if flow is not None:
                flow.feed_eof()
            if shaped is not None:
                await shaped.aclose()
            if relay.close_delay and client.transport and not client.transport.is_closing():
                await asyncio.sleep(relay.close_delay)  # slow_close: the end comes late
        finally:
            stream.close()


class _ShapedReader:
    """The client's stream as a terminating target reads it: through the upstream shapers.

    Pulled, not pushed: nothing is read from the client before the target asks, so the
    StreamReader's own backpressure holds. A fault that cuts raises `CutConnection` here.
    """

    def __init__(self, reader: ClientChunks, shape: Callable[[Stream], Stream]) -> None:
        self._shaped = shape(self._chunks(reader))
        self._left = b""

    @staticmethod
    async def _chunks(reader: ClientChunks) -> Stream:
        while data := await reader.read(READ_CHUNK):
            yield data

    async def read(self, n: int = -1) -> bytes:
        data = self._left
        if not data:
            try:
                data = await anext(self._shaped)
            except StopAsyncIteration:
                return b""
        if 0 <= n < len(data):
            data, self._left = data[:n], data[n:]
        else:
            self._left = b""
        return data

    async def aclose(self) -> None:
        with contextlib.suppress(RuntimeError):  # still running: it ends with its task
            await self._shaped.aclose()  # type: ignore[attr-defined]


class _ClientStream:
    """Writes to the client for terminating targets, counting bytes and honouring backpressure;
    through a `ShapedFlow` (the downstream shapers) when faults shape that direction."""

    def __init__(self, side: _Side, exchange: Exchange, flow: ShapedFlow | None = None) -> None:
        self._side = side
        self.flow = flow
        self.body = exchange.response_body  # its preview, counted while it is open (`_count`)
        self.reserved = 0  # of its bytes, the store counts so far (`_Relay.opened`)

    def write(self, data: bytes) -> None:
        transport = self._side.transport
        if transport is not None and not transport.is_closing():
            body = self.body
            if body.size < body.limit:  # the preview fills: the store counts it (one check)
                self._count(body, data)
            else:
                body.size += len(data)
            if self.flow is not None:
                self.flow.feed(data)
            else:
                transport.write(data)

    def _count(self, body: BodyPreview, data: bytes) -> None:
        """The target's first bytes reserve the preview's limit ahead (as a relayed side's
        do); a preview that fills past what was reserved counts the rest. The relay releases
        it all as its record arrives."""
        relay = self._side.relay
        if not body.size:
            relay.opened(self)
        body.add(data)
        if body.size >= body.limit and self.reserved < len(body.data):
            relay.filled(self)

    def writable(self) -> bool:
        flow, event, transport = self.flow, self._side.can_write, self._side.transport
        return ((flow is None or flow.room.is_set()) and (event is None or event.is_set())
                and transport is not None and not transport.is_closing())

    async def drain(self) -> None:
        flow = self.flow
        if flow is not None and not flow.room.is_set():
            await flow.room.wait()
        event = self._side.can_write
        if event is not None and not event.is_set():
            await event.wait()
        if self._side.transport is None or self._side.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")

    def close(self) -> None:
        transport = self._side.transport
        if transport is not None and not transport.is_closing():
            transport.close()
