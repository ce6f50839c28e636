"""latency: delay before the upstream or on the response's first byte; for TCP, per chunk.

On an HTTP/2 call the same `on` applies (before the call goes on, or before the response
headers); `per_message: true` instead delays each message in `direction`: each gRPC message of
a gRPC call (its length-prefixed frames, however DATA cuts them), each DATA chunk of another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from devamb.faults.applies import answering_h2_refusals
from devamb.faults.base import (
    DOWNSTREAM,
    H2_PROTOCOLS,
    UPSTREAM,
    Call,
    Fault,
    Pieces,
    Shaper,
)
from devamb.profile.reader import Node
from devamb.wire.follower import Action, Delay

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("delay", "jitter", "distribution", "on", "per_message")
DISTRIBUTIONS = ("uniform", "normal", "lognormal")


@dataclass(frozen=True)
class Params:
    delay: float
    jitter: float = 0.0
    distribution: str = "uniform"
    on: str = "request"  # HTTP: "request" (before the upstream) | "response" (first byte)
    per_message: bool = False  # HTTP/2: each message (gRPC) or DATA chunk in `direction`
    H2_KEYS: ClassVar[tuple[str, ...]] = ("per_message",)


def parse(node: Node, protocol: str) -> Params | None:
    delay = node.child("delay").duration() if node.has("delay") else None
    if not node.has("delay"):  # the other keys are checked all the same
        node.problem("missing required key 'delay' (e.g. delay: 300ms)")
    jitter = node.child("jitter").duration() if node.has("jitter") else 0.0
    dist = node.child("distribution").one_of(DISTRIBUTIONS) if node.has("distribution") else (
        "uniform"
    )
    on = node.child("on").one_of(("request", "response")) if node.has("on") else "request"
    if node.has("on") and protocol in ("tcp", "postgres", "redis"):
        node.child("on").problem("'on' is for http services: on tcp, latency delays each "
                                 "chunk in its direction (see 'direction')", key=True)
        return None
    per_message = (
        node.child("per_message").boolean() if node.has("per_message") else False
    )
    if node.has("per_message") and protocol not in H2_PROTOCOLS:
        node.child("per_message").problem("'per_message' is for http2 and grpc services (each "
                                          "call's messages)", key=True)
        return None
    if per_message and node.has("on"):
        node.child("on").problem("'on' and 'per_message' exclude each other: per_message "
                                 "delays each message, on delays the call once", key=True)
        return None
    if delay is None or jitter is None or dist is None or on is None or per_message is None:
        return None
    return Params(delay, jitter, dist, on, per_message)


class LatencyFault(Fault):
    KIND = "latency"
    ORDER = 40
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    REFUSED = answering_h2_refusals(lambda p: p.on == "response" or p.per_message)
    SHAPES = ("tcp", *H2_PROTOCOLS)  # HTTP latency acts before the upstream or on the first
    # byte instead; on HTTP/2 only `per_message` shapes (see `shapes`)
    params: Params

    def sample(self) -> float:
        p, rng = self.params, self.ctx.rng
        if not p.jitter:
            return p.delay
        if p.distribution == "normal":
            value = rng.gauss(p.delay, p.jitter)
        elif p.distribution == "lognormal":
            if not p.delay:
                return 0.0
            # mean `delay` and standard deviation `jitter`: sigma from the ratio, and mu moved
            # down by sigma^2/2 (a lognormal's mean is exp(mu + sigma^2/2), not exp(mu))
            sigma2 = math.log1p((p.jitter / p.delay) ** 2)
            value = rng.lognormvariate(math.log(p.delay) - sigma2 / 2, math.sqrt(sigma2))
        else:
            value = p.delay + rng.uniform(-p.jitter, p.jitter)
        return max(0.0, value)

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        if self.params.on == "request":
            await self.ctx.sleep(self.sample())
        return None

    async def before_first_byte(self) -> None:
        if self.params.on == "response" and not self.params.per_message:
            await self.ctx.sleep(self.sample())

    async def before_call(self, call: Call) -> bool:
        if self.params.on == "request" and not self.params.per_message:
            return not await call.delay(self.sample())
        return False

    def on_command(self, name: str) -> Action | None:
        return Delay(self.sample())

    def shapes(self, direction: str) -> bool:
        if self.protocol in H2_PROTOCOLS and not self.params.per_message:
            return False
        return super().shapes(direction)

    def shaper(self, direction: str) -> Shaper:
        return _Delayed(self)

    def call_shaper(self, direction: str, call: Call) -> Shaper:
        return _PerMessage(self) if call.grpc else _Delayed(self)


class _Delayed(Shaper):
    """TCP: each chunk waits a sampled delay before it goes on."""

    def __init__(self, fault: LatencyFault) -> None:
        self.fault = fault

    async def feed(self, chunk: bytes) -> Pieces:
        await self.fault.ctx.sleep(self.fault.sample())
        yield chunk


class _PerMessage(Shaper):
    """gRPC: each length-prefixed message (1-byte flag, 4-byte length) waits a sampled delay
    before its first byte goes on, wherever the DATA frames cut the messages."""

    def __init__(self, fault: LatencyFault) -> None:
        self.fault = fault
        self.prefix = b""  # the part of a message's 5-byte prefix seen so far
        self.left = 0  # bytes of the current message's body still to come

    async def feed(self, chunk: bytes) -> Pieces:
        start = i = 0
        size = len(chunk)
        while i < size:
            if not self.left and not self.prefix:  # a message starts here
                if i > start:
                    yield chunk[start:i]
                    start = i
                await self.fault.ctx.sleep(self.fault.sample())
            if self.left:
                take = min(self.left, size - i)
                self.left -= take
                i += take
                continue
            take = min(5 - len(self.prefix), size - i)
            self.prefix += chunk[i : i + take]
            i += take
            if len(self.prefix) == 5:
                self.left = int.from_bytes(self.prefix[1:5], "big")
                self.prefix = b""
        if start < size:
            yield chunk[start:]
