"""What every fault kind builds on: the injected clock and randomness, and the runtime hooks.

Byte-shaping kinds (bandwidth, slicer, limit_data, reset after N bytes, TCP latency) implement
one push-style `Shaper` per stream: each chunk is fed in and the pieces to pass on come out, at
the pace the shaper sleeps between them. The HTTP service pushes response and request bodies
through it as the target writes or reads them (service/shaping.py); the TCP relay pulls through
`Fault.shape`, derived from the same shaper, so each kind writes its behaviour once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from devamb.faults.applies import Refusal
from devamb.proxy.errors import CutConnection

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse
    from devamb.wire.follower import Action

Stream = AsyncIterator[bytes]
Pieces = AsyncGenerator[bytes, None]  # what a shaper lets out of one chunk
UPSTREAM, DOWNSTREAM = "upstream", "downstream"  # client -> upstream, upstream -> client
H2_PROTOCOLS = ("http2", "grpc")  # services whose calls are HTTP/2 streams
CANCEL_CODE = 8  # the HTTP/2 error code CANCEL (RFC 9113 7)


class StreamCut(CutConnection):
    """A cut that, on an HTTP/2 call, resets the stream with `code` (HTTP/1: the connection)."""

    def __init__(self, reason: str, *, reset: bool, code: int = CANCEL_CODE,
                 connection: bool = False) -> None:
        super().__init__(reason, reset=reset)
        self.code = code
        self.connection = connection  # HTTP/2: GOAWAY and close, not only this stream


class Call(Protocol):
    """One HTTP/2 call as a fault acts on it (service/h2_faults.py is the real one)."""

    grpc: bool  # a gRPC call (request content-type application/grpc...)
    exchange: Exchange

    async def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Answer with an HTTP status (a gRPC call gets the status mapped to a gRPC one)."""

    async def answer_grpc(self, code: int, message: str, headers: dict[str, str]) -> None:
        """Answer a trailers-only gRPC response with `code` and `message`."""

    def reset(self, code: int, reason: str) -> None:
        """RST_STREAM the call with an HTTP/2 error code."""

    def goaway(self, code: int, reason: str) -> None:
        """GOAWAY with `code`, then close the client's connection: every call on it ends."""

    async def delay(self, seconds: float) -> bool:
        """Wait `seconds` (the fault context's sleep); False when the call ended meanwhile
        (its deadline passed and devamb answered it, or the client gave up)."""
        ...

    async def hold(self, fault: Fault) -> str:
        """Wait on `fault.hold()`, the call's deadline and the client: "released" (go on),
        "expired" (the fault's own time ran out), "deadline" (answered) or "gone"."""
        ...


@dataclass
class FaultContext:
    """Randomness and time, injected so tests can run faults with a seed and a fake clock."""

    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic


class Shaper:
    """One stream's reshaping, push-style: `feed` each chunk, then `finish` once at its end.

    Both are async generators of the pieces to pass on; a shaper paces the stream by sleeping
    between pieces and cuts it by raising CutConnection. This one passes bytes untouched.
    """

    async def feed(self, chunk: bytes) -> Pieces:
        yield chunk

    async def finish(self) -> Pieces:
        """The stream ended: what a shaper held back (none of the built-in kinds holds any)."""
        return
        yield b""  # an async generator that yields nothing


class CutAfter(Shaper):
    """Pass the first `limit` bytes, then cut the connection (limit_data, reset after N)."""

    def __init__(self, limit: int, reason: str, *, reset: bool, code: int = CANCEL_CODE,
                 connection: bool = False) -> None:
        self.left = limit
        self.reason = reason
        self.reset = reset
        self.code = code  # an HTTP/2 call's stream is reset with this code
        self.connection = connection  # ... or its whole connection (GOAWAY)

    async def feed(self, chunk: bytes) -> Pieces:
        left = self.left
        if len(chunk) >= left:
            self.left = 0
            if left:
                yield chunk[:left]
            raise StreamCut(self.reason, reset=self.reset, code=self.code,
                            connection=self.connection)
        self.left = left - len(chunk)
        yield chunk


async def pulled(stream: Stream, shaper: Shaper) -> Stream:
    """A push-style shaper applied to a stream that is pulled (the TCP relay's way)."""
    async for chunk in stream:
        async for piece in shaper.feed(chunk):
            yield piece
    async for piece in shaper.finish():
        yield piece


class Fault:
    """One fault kind's behaviour. Hooks that a kind does not override do nothing.

    The shared wrapper (`chain.FaultState`) decides whether a fault fires; a kind only says
    what happens when it does. ORDER fixes where a kind acts in the request path, whatever the
    order in the profile.
    """

    KIND: ClassVar[str] = ""
    ORDER: ClassVar[int] = 50
    PROTOCOLS: ClassVar[tuple[str, ...]] = ("http", "tcp", *H2_PROTOCOLS)
    DIRECTIONS: ClassVar[tuple[str, ...]] = (DOWNSTREAM,)  # where it may act; first = default

    SHAPES: ClassVar[tuple[str, ...]] = ()  # protocols whose bytes this kind reshapes
    FRAMES: ClassVar[bool] = False  # `shape` also acts on a WebSocket's frames (per message)
    REFUSED: ClassVar[tuple[Refusal, ...]] = ()  # where it cannot act, and why (applies.py)

    def __init__(self, params: Any, ctx: FaultContext, direction: str, protocol: str) -> None:
        self.params = params
        self.ctx = ctx
        self.direction = direction
        self.protocol = protocol

    # -- connection level (both protocols) --------------------------------------------------

    def refuses(self) -> bool:
        """True: the client's connection is closed as soon as it arrives."""
        return False

    def holds_connection(self) -> bool:
        """True: the connection is held (a black hole) until `hold` returns (timeout)."""
        return False

    async def hold(self) -> bool:
        """Hold the connection; True to go on, False to give up (the time ran out)."""
        return True

    def release(self) -> None:
        """The fault was turned off, removed or replaced: what it holds goes on."""

    def close_delay(self) -> float:
        """Seconds the end of a response or the close of a TCP connection is delayed."""
        return 0.0

    # -- commands (protocol-aware TCP services: postgres, redis) ------------------------------

    def on_command(self, name: str) -> Action | None:
        """What to do with one command this fault fired on (wire/follower.py); None: nothing."""
        return None

    # -- HTTP ---------------------------------------------------------------------------------

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        """Act before the upstream is called; a response returned here is the answer."""
        return None

    async def before_first_byte(self) -> None:
        """Act once the upstream answered, before anything reaches the client."""

    async def before_end(self) -> None:
        """Act after the last body byte, before the response is finished."""

    # -- HTTP/2 calls (http2 and grpc services) -----------------------------------------------

    async def before_call(self, call: Call) -> bool:
        """Act before an HTTP/2 call goes to its target; True: the call was answered or ended
        here. Kinds that shape bytes act through `call_shaper` instead."""
        return False

    def call_shaper(self, direction: str, call: Call) -> Shaper:
        """A new shaper for one HTTP/2 call's DATA flowing in `direction`."""
        return self.shaper(direction)

    # -- bytes (HTTP bodies and TCP streams) ------------------------------------------------

    def shapes(self, direction: str) -> bool:
        """Whether this fault reshapes the bytes flowing in `direction`."""
        return self.protocol in self.SHAPES and self.direction in (direction, "both")

    def shaper(self, direction: str) -> Shaper:
        """A new shaper for one stream flowing in `direction` (asked when `shapes` is True)."""
        return Shaper()

    def shape(self, stream: Stream, direction: str) -> Stream:
        """Wrap a stream of chunks flowing in `direction` (pull-style, from `shaper`)."""
        return pulled(stream, self.shaper(direction))
