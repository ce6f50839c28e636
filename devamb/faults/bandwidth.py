"""bandwidth: limit bytes per second in a direction (HTTP bodies and TCP streams)."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.applies import upstream_bytes_refusal
from devamb.faults.base import DOWNSTREAM, UPSTREAM, Fault, Stream
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
    REFUSED = (upstream_bytes_refusal(),)
    SHAPES = ("http", "tcp")
    params: Params

    async def shape(self, stream: Stream, direction: str) -> Stream:  # type: ignore[override]
        rate = self.params.rate
        piece = max(1, int(rate * TICK))
        async for chunk in stream:
            for start in range(0, len(chunk), piece):
                part = chunk[start : start + piece]
                yield part
                await self.ctx.sleep(len(part) / rate)


FAULT = BandwidthFault
