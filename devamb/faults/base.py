"""What every fault kind builds on: the injected clock and randomness, and the runtime hooks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from devamb.faults.applies import Refusal
from devamb.proxy.errors import CutConnection

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

Stream = AsyncIterator[bytes]
UPSTREAM, DOWNSTREAM = "upstream", "downstream"  # client -> upstream, upstream -> client


@dataclass
class FaultContext:
    """Randomness and time, injected so tests can run faults with a seed and a fake clock."""

    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic



class Fault:
    """One fault kind's behaviour. Hooks that a kind does not override do nothing.

    The shared wrapper (`chain.FaultState`) decides whether a fault fires; a kind only says
    what happens when it does. ORDER fixes where a kind acts in the request path, whatever the
    order in the profile.
    """

    KIND: ClassVar[str] = ""
    ORDER: ClassVar[int] = 50
    PROTOCOLS: ClassVar[tuple[str, ...]] = ("http", "tcp")
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

    # -- bytes (HTTP bodies and TCP streams) ------------------------------------------------

    def shapes(self, direction: str) -> bool:
        """Whether `shape` should wrap the bytes flowing in `direction`."""
        return self.protocol in self.SHAPES and self.direction in (direction, "both")

    def shape(self, stream: Stream, direction: str) -> Stream:
        """Wrap a stream of chunks flowing in `direction`."""
        return stream


async def cut_after(stream: Stream, limit: int, reason: str, *, reset: bool) -> Stream:
    """Pass the first `limit` bytes, then cut the connection (limit_data, reset after N)."""
    left = limit
    async for chunk in stream:
        if len(chunk) >= left:
            if left:
                yield chunk[:left]
            raise CutConnection(reason, reset=reset)
        left -= len(chunk)
        yield chunk
