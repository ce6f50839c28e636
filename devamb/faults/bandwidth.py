"""bandwidth: limit bytes per second in a direction (HTTP bodies and TCP streams)."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.applies import answering_h2_refusals
from devamb.faults.base import (
    DOWNSTREAM,
    H2_PROTOCOLS,
    UPSTREAM,
    Fault,
    FaultContext,
    Pieces,
    Shaper,
)
from devamb.profile.reader import Node

KEYS = ("rate",)
TICK = 0.05  # seconds of budget written at a time: smooth, without a sleep per tiny piece


@dataclass(frozen=True)
class Params:
    rate: int  # bytes per second


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("rate"):
        node.problem("missing required key 'rate' (e.g. rate: 256KiB, bytes per second)")
        return None
    rate = node.child("rate").size()
    if rate is not None and rate <= 0:
        node.child("rate").problem("rate must be more than 0")
        return None
    return None if rate is None else Params(rate)


class BandwidthFault(Fault):
    KIND = "bandwidth"
    ORDER = 60
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("http", "tcp", *H2_PROTOCOLS)
    REFUSED = answering_h2_refusals()
    params: Params

    def shaper(self, direction: str) -> Shaper:
        return _Paced(self.params.rate, self.ctx)


class _Paced(Shaper):
    def __init__(self, rate: int, ctx: FaultContext) -> None:
        self.rate = rate
        self.piece = max(1, int(rate * TICK))
        self.ctx = ctx

    async def feed(self, chunk: bytes) -> Pieces:
        rate, piece = self.rate, self.piece
        for start in range(0, len(chunk), piece):
            part = chunk[start : start + piece]
            yield part
            await self.ctx.sleep(len(part) / rate)
