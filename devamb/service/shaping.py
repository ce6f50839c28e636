"""Byte faults around whatever a target does: the plan's `Shaping` as the proxy's filters.

Like Envoy's fault filter (an encoder and a decoder filter), the service applies response
shaping to every response the client gets for an exchange a fault fired on — relayed from an
upstream (url, pool, split, docker, shards) or made by devamb (echo, mock, abort, and devamb's
own error answers such as a 502 or 504: the client gets those over the same slow network).
Requests devamb refuses before routing them (a loop, an unknown target, a malformed head) roll
no faults and are not shaped. The request body is shaped as the target reads it, so an upload
to an echo or a mock target is paced or cut as one relayed upstream is.

- latency `on: response`: before the head leaves (`Fault.before_first_byte`);
- bandwidth, slicer, limit_data, reset after N bytes: the body, through the kinds' shapers;
- slow_close: before the end (`Fault.before_end`). A body of known length keeps its last byte
  back until then, so that the client sees the response end late, not only a chunked one.

A shaper's `CutConnection` cuts the client's connection (FIN or RST, as the fault says) and is
recorded on the exchange here, whichever target was writing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from devamb.faults.base import DOWNSTREAM, UPSTREAM
from devamb.faults.chain import ShaperChain, Shaping
from devamb.inspect.exchange import Exchange
from devamb.proxy.connection import cut
from devamb.proxy.errors import CutConnection
from devamb.proxy.filters import Send
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import StreamResponse, has_body


def install(shaping: Shaping, request: FrontRequest, exchange: Exchange) -> None:
    """Put the exchange's shaping on the request, for every response and body read to meet,
    and for a WebSocket's frames once it is upgraded."""
    request.frame_shaping = shaping
    if shaping.first_byte or shaping.end or shaping.down:
        request.response_filter = ResponseShaper(shaping, request, exchange)
    up = shaping.shapers(UPSTREAM)
    if up is not None:
        request.body_filter = UploadShaper(up, request, exchange)


def _cut(exc: CutConnection, request: FrontRequest, exchange: Exchange) -> None:
    exchange.error = exc.reason
    cut(request.transport, with_reset=exc.reset)


class ResponseShaper:
    """The response filter (proxy.filters.ResponseFilter) of one shaped exchange."""

    __slots__ = ("_held", "_hold", "_sent", "chain", "exchange", "request", "shaping")

    def __init__(self, shaping: Shaping, request: FrontRequest, exchange: Exchange) -> None:
        self.shaping = shaping
        self.request = request
        self.exchange = exchange
        self.chain: ShaperChain | None = shaping.shapers(DOWNSTREAM)
        self._sent = 0  # body bytes the client was sent
        self._hold: int | None = None  # bytes to go before the last one, which waits for the end
        self._held = b""

    async def on_head(self, response: StreamResponse) -> None:
        await self.shaping.before_first_byte()
        length = response.content_length
        if self.shaping.end and length and has_body(response.status, self.request.method):
            self._hold = length

    async def on_data(self, data: bytes, send: Send) -> None:
        chain = self.chain
        if chain is None:
            await self._pass(data, send)
            return
        try:
            async with aclosing(chain.feed(data)) as pieces:
                async for piece in pieces:
                    await self._pass(piece, send)
        except CutConnection as exc:
            self._cut(exc)
            raise

    async def on_end(self, send: Send) -> None:
        chain = self.chain
        if chain is not None:
            try:
                async with aclosing(chain.finish()) as pieces:
                    async for piece in pieces:
                        await self._pass(piece, send)
            except CutConnection as exc:
                self._cut(exc)
                raise
        await self.shaping.before_end()
        if self._held:
            held, self._held = self._held, b""
            self._sent += len(held)
            await send(held)

    async def _pass(self, piece: bytes, send: Send) -> None:
        left = self._hold
        if left is not None and len(piece) >= left:  # the body's last byte waits for the end
            self._hold = None
            piece, self._held = piece[: left - 1], piece[left - 1 :]
        elif left is not None:
            self._hold = left - len(piece)
        if piece:
            self._sent += len(piece)
            await send(piece)

    def _cut(self, exc: CutConnection) -> None:
        self.exchange.response_body.ended_at(self._sent)  # what the client got, not more
        _cut(exc, self.request, self.exchange)


class UploadShaper:
    """The body filter (proxy.filters.BodyFilter) of one exchange whose upload is shaped."""

    __slots__ = ("chain", "exchange", "request")

    def __init__(self, chain: ShaperChain, request: FrontRequest, exchange: Exchange) -> None:
        self.chain = chain
        self.request = request
        self.exchange = exchange

    async def wrap(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        chain = self.chain
        try:
            async for chunk in body:
                async with aclosing(chain.feed(chunk)) as pieces:
                    async for piece in pieces:
                        yield piece
            async with aclosing(chain.finish()) as pieces:
                async for piece in pieces:
                    yield piece
        except CutConnection as exc:
            _cut(exc, self.request, self.exchange)
            raise
