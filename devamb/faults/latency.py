"""latency: delay before the upstream or on the response's first byte; for TCP, per chunk."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devamb.faults.base import DOWNSTREAM, UPSTREAM, Fault, Pieces, Shaper
from devamb.profile.reader import Node

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("delay", "jitter", "distribution", "on")
DISTRIBUTIONS = ("uniform", "normal", "lognormal")


@dataclass(frozen=True)
class Params:
    delay: float
    jitter: float = 0.0
    distribution: str = "uniform"
    on: str = "request"  # HTTP: "request" (before the upstream) | "response" (first byte)


def parse(node: Node, protocol: str) -> Params | None:
    delay = node.child("delay").duration() if node.has("delay") else None
    if not node.has("delay"):  # the other keys are checked all the same
        node.problem("missing required key 'delay' (e.g. delay: 300ms)")
    jitter = node.child("jitter").duration() if node.has("jitter") else 0.0
    dist = node.child("distribution").one_of(DISTRIBUTIONS) if node.has("distribution") else (
        "uniform"
    )
    on = node.child("on").one_of(("request", "response")) if node.has("on") else "request"
    if node.has("on") and protocol == "tcp":
        node.child("on").problem("'on' is for http services: on tcp, latency delays each "
                                 "chunk in its direction (see 'direction')", key=True)
        return None
    if delay is None or jitter is None or dist is None or on is None:
        return None
    return Params(delay, jitter, dist, on)


class LatencyFault(Fault):
    KIND = "latency"
    ORDER = 40
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("tcp",)  # HTTP latency acts before the upstream or on the first byte instead
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
        if self.params.on == "response":
            await self.ctx.sleep(self.sample())

    def shaper(self, direction: str) -> Shaper:
        return _Delayed(self)


class _Delayed(Shaper):
    """TCP: each chunk waits a sampled delay before it goes on."""

    def __init__(self, fault: LatencyFault) -> None:
        self.fault = fault

    async def feed(self, chunk: bytes) -> Pieces:
        await self.fault.ctx.sleep(self.fault.sample())
        yield chunk
