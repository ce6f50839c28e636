"""A service's faults at runtime: add, toggle, remove, expire; roll them per exchange."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from devamb.faults.base import Fault, FaultContext
from devamb.faults.chain import FaultChain, FaultState, Plan
from devamb.faults.live import live_plan
from devamb.faults.spec import FaultSpec
from devamb.wire import transport

DELAY_HEADER = "x-devamb-fault-delay"  # milliseconds
ABORT_HEADER = "x-devamb-fault-abort"  # an HTTP status


class FaultManager:
    def __init__(
        self,
        service: str,
        protocol: str,
        specs: Mapping[str, FaultSpec],
        ctx: FaultContext,
        *,
        header_faults: bool = False,
        on_change: Callable[[str, str | None], None] = lambda service, why: None,
    ) -> None:
        self.service = service
        self.protocol = protocol
        self.ctx = ctx
        self.header_faults = header_faults
        self._on_change = on_change
        self.chain = FaultChain(tuple(self._state(s) for s in specs.values()))
        self.live = False  # TCP: faults act on open connections too (faults/live.py)
        self._swapped = asyncio.Event()  # set (and replaced) at each change of the chain

    def _state(self, spec: FaultSpec) -> FaultState:
        return FaultState(spec, self.ctx, transport(self.protocol), self._expire)

    def _swap(self, states: list[FaultState], why: str | None = None, *,
              release: bool = True) -> None:
        old = self.chain.states
        self.chain = FaultChain(tuple(states))
        self._swapped.set()
        self._swapped = asyncio.Event()
        if release:  # a held request goes on once its fault is lifted, removed or replaced
            live = {s.spec.name: s for s in states}
            for state in old:
                current = live.get(state.spec.name)
                if current is None or not current.enabled or current.fault is not state.fault:
                    _release(state)
        self._on_change(self.service, why)

    # -- queries -----------------------------------------------------------------------------

    def list(self) -> builtins.list[dict[str, Any]]:  # (the name shadows `list` here)
        return [s.to_json() for s in self.chain.states]

    def get(self, name: str) -> FaultState | None:
        return next((s for s in self.chain.states if s.spec.name == name), None)

    def names(self) -> builtins.list[str]:
        return [s.spec.name for s in self.chain.states]

    # -- changes -----------------------------------------------------------------------------

    def add(self, spec: FaultSpec) -> None:
        """Add a fault, or replace the one with the same name."""
        states = [s for s in self.chain.states if s.spec.name != spec.name]
        self._swap([*states, self._state(spec)])

    def set_enabled(self, name: str, enabled: bool, why: str | None = None, *,
                    release: bool = True) -> bool:
        """Turn a fault on or off; False if there is no such fault.

        Turning a fault off lets the requests it holds go on, unless `release` is False (a
        fault that fired its last time keeps holding that last one until it is removed).
        """
        state = self.get(name)
        if state is None:
            return False
        if state.enabled == enabled:
            if not enabled and release:
                _release(state)  # what a fault that ran out of `times` still holds
            return True
        if enabled:
            replaced = self._state(dataclasses.replace(state.spec, enabled=True))
        else:
            replaced = state.disabled(self.ctx)
        self._swap([replaced if s is state else s for s in self.chain.states], why,
                   release=release)
        return True

    def remove(self, name: str) -> bool:
        if self.get(name) is None:
            return False
        self._swap([s for s in self.chain.states if s.spec.name != name])
        return True

    def clear(self) -> None:
        if self.chain.states:
            self._swap([])

    def _expire(self, state: FaultState, why: str, release: bool = True) -> None:
        self.set_enabled(state.spec.name, False, f"fault {state.spec.name!r} on "
                                                 f"{self.service!r} turned off: {why}",
                         release=release)

    def tick(self) -> None:
        """Turn off faults whose `for:` time is up, even when no traffic rolls them."""
        now = self.ctx.clock()
        for state in self.chain.states:
            if state.enabled and state.expired(now):
                self._expire(state, f"its time ({state.spec.duration:g}s) is up")

    # -- per exchange ------------------------------------------------------------------------

    def roll_http(self, method: str, path: str, headers: Mapping[str, str]) -> Plan | None:
        plan = self.chain.roll(self.ctx, (method, path, headers)) if self.chain.armed else None
        if self.header_faults:
            extra = self._from_headers(headers)
            if extra:
                names = [f"header:{f.KIND}" for f in extra]
                if plan is None:
                    plan = Plan(extra, names)
                else:
                    plan.fired.extend(extra)
                    plan.names.extend(names)
                order = sorted(zip(plan.fired, plan.names, strict=True),
                               key=lambda pair: type(pair[0]).ORDER)
                plan.fired = [f for f, _ in order]
                plan.names = [n for _, n in order]
        return plan

    def roll_tcp(self) -> Plan | None:
        if self.live:
            return live_plan(self, self.swapped)
        return self.chain.roll(self.ctx) if self.chain.armed else None

    async def swapped(self) -> None:
        """Wait for the next change of the faults."""
        await self._swapped.wait()
    @property
    def command_armed(self) -> bool:
        """Command-level faults are on: a postgres/redis relay stops at each command."""
        return self.chain.command_armed

    def roll_command(self, fields: Mapping[str, str]) -> Plan | None:
        """The command-level faults that fire for one command (`fields`: what `match:` sees)."""
        return self.chain.roll(self.ctx, None, fields) if self.chain.command_armed else None

    def _from_headers(self, headers: Mapping[str, str]) -> builtins.list[Fault]:
        """Envoy-style faults a client asks for on one request (when the service allows it)."""
        from devamb.faults import abort, latency  # the kinds' modules: imported when used

        faults: builtins.list[Fault] = []
        delay = headers.get(DELAY_HEADER)
        if delay is not None and delay.isdigit():
            delayed = latency.Params(delay=int(delay) / 1000)
            faults.append(latency.LatencyFault(delayed, self.ctx, "downstream", self.protocol))
        status = headers.get(ABORT_HEADER)
        if status is not None and status.isdigit() and 200 <= int(status) <= 599:
            aborted = abort.Params(status=int(status))
            faults.append(abort.AbortFault(aborted, self.ctx, "downstream", self.protocol))
        return faults


def _release(state: FaultState) -> None:
    state.fault.release()
