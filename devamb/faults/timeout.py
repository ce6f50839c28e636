"""timeout: a black hole — accept, never answer, until the fault goes or `timeout` passes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devamb.faults.base import CANCEL_CODE, Call, Fault
from devamb.profile.reader import Node
from devamb.proxy.connection import cut
from devamb.proxy.response import Response

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("timeout",)


@dataclass(frozen=True)
class Params:
    timeout: float = 0.0  # 0: hold until the fault is turned off or removed


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("timeout"):
        return Params()
    value = node.child("timeout").duration()
    return None if value is None else Params(value)


class TimeoutFault(Fault):
    KIND = "timeout"
    ORDER = 30
    params: Params

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.released = asyncio.Event()  # set when the fault is turned off or removed

    def holds_connection(self) -> bool:
        return True

    def release(self) -> None:
        self.released.set()

    async def hold(self) -> bool:
        """Wait; True if the fault was lifted (go on), False if the time ran out (give up)."""
        if self.params.timeout <= 0:
            await self.released.wait()
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.params.timeout):
                await self.released.wait()
                return True
        return False

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        if await self.hold():
            return None
        cut(request.transport, with_reset=False)
        exchange.error = f"fault timeout: held {self.params.timeout:g}s, then closed"
        return Response(status=499)  # never sent: the connection is gone

    async def before_call(self, call: Call) -> bool:
        """HTTP/2: the call gets no answer until the fault goes (then it goes on), the call's
        deadline passes (devamb answers it: DEADLINE_EXCEEDED, or 504), the client gives up,
        or `timeout` passes (the stream is reset with CANCEL: "held, then closed")."""
        outcome = await call.hold(self)
        if outcome == "released":
            return False
        if outcome == "expired":
            call.reset(CANCEL_CODE, f"fault timeout: held {self.params.timeout:g}s, then reset")
        return True
