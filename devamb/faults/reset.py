"""reset: close the client's connection with a TCP reset, at once or after N response bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devamb.faults.base import DOWNSTREAM, UPSTREAM, CutAfter, Fault, Shaper
from devamb.profile.reader import Node
from devamb.proxy.connection import reset
from devamb.proxy.response import Response

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("after_bytes",)


@dataclass(frozen=True)
class Params:
    after_bytes: int | None = None  # None: before the upstream is called


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("after_bytes"):
        return Params()
    size = node.child("after_bytes").size()
    return None if size is None else Params(size)


class ResetFault(Fault):
    KIND = "reset"
    ORDER = 10
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("http", "tcp")
    params: Params

    def refuses(self) -> bool:
        return self.params.after_bytes is None and self.protocol == "tcp"

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        if self.params.after_bytes is not None:
            return None
        reset(request.transport)
        exchange.error = "fault reset: connection reset before the upstream"
        return Response(status=499)  # never sent: the connection is gone

    def shapes(self, direction: str) -> bool:
        return self.params.after_bytes is not None and super().shapes(direction)

    def shaper(self, direction: str) -> Shaper:
        limit = self.params.after_bytes or 0
        return CutAfter(limit, f"fault reset after {limit} bytes", reset=True)
