"""Faults that follow a TCP connection's whole life, as Toxiproxy's toxics do: a fault added
while a connection is open acts on its next bytes, and one removed stops acting on them.

Devamb's faults are otherwise rolled once, when a connection opens. A service whose faults are
`live` (the Toxiproxy API's proxies) rolls them at the open as usual for what acts on the
connection itself (a black hole for a new connection, slow_close), and shapes both directions
of every connection with whatever byte-shaping faults the service has at each chunk. Each fault
is decided once per connection (its probability rolled when it is first seen there), and a
shaper keeps its state (limit_data's count) for as long as its fault stays.

A timeout fault seen on an open connection holds what flows (in either direction) until it is
removed or its `timeout` passes, then closes the connection, as Toxiproxy's timeout does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from devamb.faults.base import UPSTREAM, Fault, FaultContext, Pieces, Shaper
from devamb.faults.chain import FaultChain, FaultState, Plan, ShaperChain
from devamb.proxy.errors import CutConnection

if TYPE_CHECKING:
    from devamb.faults.manager import FaultManager


class LiveConnection:
    """One connection's view of its service's faults: which fired here, and their shapers."""

    def __init__(self, manager: FaultManager, fired: list[FaultState]) -> None:
        self.manager = manager
        # by the fault object (kept alive here, so never confused with a later one)
        self.decided: dict[Fault, bool] = {s.fault: s in fired for s in manager.chain.states}
        self.shapers: dict[tuple[str, Fault], Shaper] = {}
        self._chains: dict[str, tuple[FaultChain, ShaperChain | None, Fault | None]] = {}

    def _fires(self, state: FaultState, ctx: FaultContext) -> bool:
        key = state.fault
        if key not in self.decided:
            p = state.spec.probability
            self.decided[key] = p >= 1.0 or ctx.rng.random() < p
        return state.enabled and self.decided[key]

    def now(self, direction: str) -> tuple[ShaperChain | None, Fault | None]:
        """The shapers for `direction` under the service's faults as they are now, and the
        fault that holds the connection (a timeout), if one fired here."""
        chain = self.manager.chain
        cached = self._chains.get(direction)
        if cached is not None and cached[0] is chain:
            return cached[1], cached[2]
        ctx = self.manager.ctx
        shapers: list[Shaper] = []
        hole: Fault | None = None
        live: set[tuple[str, Fault]] = set()
        for state in chain.states:
            fault = state.fault
            if not self._fires(state, ctx):
                continue
            if fault.holds_connection():
                hole = hole or fault
            elif fault.shapes(direction):
                key = (direction, fault)
                live.add(key)
                if key not in self.shapers:
                    self.shapers[key] = fault.shaper(direction)
                shapers.append(self.shapers[key])
        for key in [k for k in self.shapers if k[0] == direction and k not in live]:
            del self.shapers[key]
        result = (ShaperChain(shapers) if shapers else None), hole
        self._chains[direction] = (chain, *result)
        return result


class _LiveShaper(Shaper):
    def __init__(self, connection: LiveConnection, direction: str,
                 changed: Callable[[], Awaitable[None]]) -> None:
        self.connection = connection
        self.direction = direction
        self.changed = changed

    async def feed(self, chunk: bytes) -> Pieces:
        shapers, hole = self.connection.now(self.direction)
        if hole is not None:
            await self._held(hole)
        if shapers is None:
            yield chunk
            return
        async for piece in shapers.feed(chunk):
            yield piece

    async def _held(self, hole: Fault) -> None:
        """Hold until the fault goes or its time passes; then the connection is closed."""
        timeout = getattr(hole.params, "timeout", 0.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout or None):
                while self.connection.now(self.direction)[1] is hole:
                    await self.changed()
        raise CutConnection(f"fault timeout: held, then closed ({self.direction})", reset=False)


class Following(Fault):
    """Stands in a live connection's plan for the faults it follows: it shapes both directions
    with whatever faults the service has at each chunk."""

    KIND = "live"
    ORDER = 100

    def __init__(self, connection: LiveConnection, changed: Callable[[], Awaitable[None]]) -> None:
        super().__init__(None, connection.manager.ctx, "both", "tcp")
        self.connection = connection
        self.changed = changed

    def shapes(self, direction: str) -> bool:
        return True

    def shaper(self, direction: str) -> Shaper:
        return _LiveShaper(self.connection, direction, self.changed)


def live_plan(manager: FaultManager, changed: Callable[[], Awaitable[None]]) -> Plan:
    """A new connection's plan: the faults rolled now that act on the connection itself, and
    the shaping that follows the service's faults from now on."""
    states = manager.chain.states
    fired = [s for s in states if s.enabled and s.roll(manager.ctx, None)]
    connection = LiveConnection(manager, fired)
    kept = [s for s in fired if not s.fault.shapes(UPSTREAM) and not s.fault.shapes("downstream")]
    return Plan([*(s.fault for s in kept), Following(connection, changed)],
                [s.spec.name for s in fired])
