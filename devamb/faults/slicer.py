"""slicer: split data into small chunks with a delay between them (HTTP bodies and TCP)."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.applies import upstream_bytes_refusal
from devamb.faults.base import DOWNSTREAM, UPSTREAM, Fault, Stream
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
    REFUSED = (upstream_bytes_refusal(),)
    SHAPES = ("http", "tcp")
    params: Params

    async def shape(self, stream: Stream, direction: str) -> Stream:  # type: ignore[override]
        size, delay = self.params.size, self.params.delay
        async for chunk in stream:
            for start in range(0, len(chunk), size):
                yield chunk[start : start + size]
                await self.ctx.sleep(delay)


FAULT = SlicerFault
