"""slow_close: delay the end of the response (HTTP) or the close of the connection (TCP)."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.applies import answering_h2_refusals
from devamb.faults.base import Fault
from devamb.profile.reader import Node

KEYS = ("delay",)


@dataclass(frozen=True)
class Params:
    delay: float


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("delay"):
        node.problem("missing required key 'delay' (e.g. delay: 2s)")
        return None
    delay = node.child("delay").duration()
    return None if delay is None else Params(delay)


class SlowCloseFault(Fault):
    KIND = "slow_close"
    ORDER = 90
    REFUSED = answering_h2_refusals()
    params: Params

    async def before_end(self) -> None:
        await self.ctx.sleep(self.params.delay)

    def close_delay(self) -> float:
        return self.params.delay
