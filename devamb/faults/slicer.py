"""slicer: split data into small chunks with a delay between them (HTTP bodies and TCP)."""

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

KEYS = ("size", "delay")


@dataclass(frozen=True)
class Params:
    size: int = 64
    delay: float = 0.01


def parse(node: Node, protocol: str) -> Params | None:
    size = node.child("size").size() if node.has("size") else 64
    delay = node.child("delay").duration() if node.has("delay") else 0.01
    if size is not None and size <= 0:
        node.child("size").problem("size must be more than 0")
        return None
    return None if size is None or delay is None else Params(size, delay)


class SlicerFault(Fault):
    KIND = "slicer"
    ORDER = 70
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("http", "tcp", *H2_PROTOCOLS)
    REFUSED = answering_h2_refusals()
    params: Params

    def shaper(self, direction: str) -> Shaper:
        return _Sliced(self.params, self.ctx)


class _Sliced(Shaper):
    def __init__(self, params: Params, ctx: FaultContext) -> None:
        self.size = params.size
        self.delay = params.delay
        self.ctx = ctx

    async def feed(self, chunk: bytes) -> Pieces:
        size, delay = self.size, self.delay
        for start in range(0, len(chunk), size):
            yield chunk[start : start + size]
            await self.ctx.sleep(delay)
