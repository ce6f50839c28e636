"""limit_data: close the connection after N bytes in a direction (an HTTP/2 call: its stream is
reset with CANCEL after N bytes of its DATA)."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.applies import answering_h2_refusals
from devamb.faults.base import DOWNSTREAM, H2_PROTOCOLS, UPSTREAM, CutAfter, Fault, Shaper
from devamb.profile.reader import Node

KEYS = ("bytes",)


@dataclass(frozen=True)
class Params:
    bytes: int


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("bytes"):
        node.problem("missing required key 'bytes' (e.g. bytes: 1KiB)")
        return None
    size = node.child("bytes").size()
    return None if size is None else Params(size)


class LimitDataFault(Fault):
    KIND = "limit_data"
    ORDER = 80
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("http", "tcp", *H2_PROTOCOLS)
    REFUSED = answering_h2_refusals()
    params: Params

    def shaper(self, direction: str) -> Shaper:
        limit = self.params.bytes
        return CutAfter(limit, f"fault limit_data: closed after {limit} bytes", reset=False)
