"""The Engine: implements EngineControl in-process, composed of the lifecycle (start, reload,
stop) and the desks that each answer one part of the control surface.

Each public method hands over to the part that owns it; the shared state (profile, services,
store, bus) lives in one EngineContext.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from devamb.control.bus import EventBus
from devamb.control.protocol import Event, ExchangeSummary, Status
from devamb.engine.assembly import Profile
from devamb.engine.context import EngineContext
from devamb.engine.desks.faults import FaultDesk
from devamb.engine.desks.recording import RecordingDesk
from devamb.engine.desks.scenarios import ScenarioDesk
from devamb.engine.desks.services import ServiceDesk
from devamb.engine.lifecycle import Lifecycle
from devamb.engine.state import RuntimeState
from devamb.faults.base import FaultContext
from devamb.inspect.masking import Redactor
from devamb.inspect.store import ExchangeStore
from devamb.service.core import Service
from devamb.service.recorder import Recorder
from devamb.service.spec import ServiceSpec

if TYPE_CHECKING:
    from devamb.engine.desks.inspection import InspectionDesk


@dataclass(frozen=True)
class Desks:
    """The parts of EngineControl, one desk each."""

    ctx: EngineContext
    services: ServiceDesk
    faults: FaultDesk
    scenarios: ScenarioDesk
    recording: RecordingDesk

    @cached_property
    def inspection(self) -> InspectionDesk:
        """Made at the first call that reads the records or their events: it holds nothing of
        its own, and its module is not imported by an engine nobody inspects (issue 22)."""
        from devamb.engine.desks.inspection import InspectionDesk

        return InspectionDesk(self.ctx)


class Engine:
    def __init__(
        self,
        profile: Profile,
        *,
        state: RuntimeState | None = None,
        fault_context: FaultContext | None = None,
    ) -> None:
        ctx = EngineContext(profile, state or RuntimeState(None), fault_context or FaultContext())
        scenarios, recording, faults = ScenarioDesk(ctx), RecordingDesk(ctx), FaultDesk(ctx)
        self.ctx = ctx
        self.desks = Desks(
            ctx=ctx,
            services=ServiceDesk(ctx, scenarios, recording),
            faults=faults,
            scenarios=scenarios,
            recording=recording,
        )
        self.lifecycle = Lifecycle(
            ctx, faults_changed=faults.changed, stopping=scenarios.cancel_all
        )

    # -- the shared state, for the runner and tests -------------------------------------------

    @property
    def profile(self) -> Profile:
        return self.ctx.profile

    @property
    def services(self) -> dict[str, Service]:
        return self.ctx.services

    @property
    def store(self) -> ExchangeStore:
        return self.ctx.store

    @property
    def bus(self) -> EventBus:
        return self.ctx.bus

    @property
    def recorder(self) -> Recorder:
        return self.ctx.recorder

    @property
    def state(self) -> RuntimeState:
        return self.ctx.state

    @property
    def fault_context(self) -> FaultContext:
        return self.ctx.fault_context

    @property
    def secrets(self) -> Redactor:
        return self.ctx.secrets

    @property
    def config_errors(self) -> list[str]:
        """A rejected profile change's problems, until a change is accepted."""
        return self.ctx.config_errors

    @property
    def started(self) -> float:
        return self.ctx.started

    @property
    def grace(self) -> float | None:
        """Seconds a stop drains exchanges in flight (None: see default_grace)."""
        return self.lifecycle.grace

    @grace.setter
    def grace(self, value: float | None) -> None:
        self.lifecycle.grace = value

    @property
    def drain_to_timeout(self) -> bool:
        """The runner's engines drain for the longest service timeout."""
        return self.lifecycle.drain_to_timeout

    @drain_to_timeout.setter
    def drain_to_timeout(self, value: bool) -> None:
        self.lifecycle.drain_to_timeout = value

    def notice(self, level: str, message: str) -> None:
        """Something the developer should see: logged, and shown by the TUI as a notification."""
        self.ctx.notice(level, message)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, watch: bool = False) -> None:
        """Start every service (undone whole if one cannot); `watch` reloads on file changes."""
        await self.lifecycle.start(watch=watch)

    async def reload(self) -> bool:
        """Read the profile again and apply it; a bad profile is rejected whole (False)."""
        return await self.lifecycle.reload()

    async def apply(self, profile: Profile) -> bool:
        """Apply a new profile as a diff of services; nothing changes unless all of it can."""
        return await self.lifecycle.apply(profile)

    def default_grace(self) -> float:
        return self.lifecycle.default_grace()

    def in_flight(self) -> dict[str, int]:
        return self.lifecycle.in_flight()

    async def stop(self, grace: float | None = None) -> dict[str, Any]:
        """Stop accepting, drain for up to `grace` seconds, cut the rest: {finished, cut}."""
        return await self.lifecycle.stop(grace)

    async def wait_shutdown_requested(self) -> None:
        await self.lifecycle.wait_shutdown_requested()

    @property
    def shutdown_requested(self) -> bool:
        return self.lifecycle.shutdown_requested

    def cut_now(self) -> None:
        """End a drain in progress now, cutting the exchanges still in flight."""
        self.lifecycle.cut_now()

    async def add_service(self, spec: ServiceSpec) -> Service:
        """One more service, added at run time (the Toxiproxy API's proxies); reloads keep it."""
        return await self.lifecycle.add_service(spec)

    async def remove_service(self, name: str) -> None:
        await self.lifecycle.remove_service(name)

    async def set_listening(self, name: str, listening: bool) -> None:
        """Stop a service's listener (its connections close) or start it again."""
        await self.lifecycle.set_listening(name, listening)

    # -- EngineControl ------------------------------------------------------------------------

    async def status(self) -> Status:
        return await self.desks.services.status()

    async def switch(self, service: str, target: str, on_switch: str | None = None) -> None:
        await self.desks.services.switch(service, target, on_switch)

    async def metrics(self) -> str:
        return await self.desks.services.metrics()

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        lines = self.desks.services.container_logs(service, target, tail, follow)
        async with contextlib.aclosing(lines):
            async for line in lines:
                yield line

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        return await self.desks.inspection.exchanges(limit, filter)

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        return await self.desks.inspection.exchange(exchange_id)

    async def clear_exchanges(self) -> None:
        await self.desks.inspection.clear_exchanges()

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        return await self.desks.inspection.export_har(filter)

    async def slow_statements(self, service: str, limit: int = 10) -> dict[str, Any]:
        return await self.desks.inspection.slow_statements(service, limit)

    async def export_curl(self, exchange_id: int) -> str:
        return await self.desks.inspection.export_curl(exchange_id)

    async def export_grpcurl(self, exchange_id: int) -> str:
        return await self.desks.inspection.export_grpcurl(exchange_id)

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        return await self.desks.inspection.replay(exchange_id, target, diff, ignore)

    async def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        events = self.desks.inspection.events(filter)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        return await self.lifecycle.shutdown(grace, wait)

    async def close(self) -> None:
        """In-process: nothing to release (EngineControl.close is for the socket client)."""

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return await self.desks.faults.faults(service)

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        return await self.desks.faults.add_fault(service, fault)

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        await self.desks.faults.set_fault(service, name, enabled)

    async def remove_fault(self, service: str, name: str) -> None:
        await self.desks.faults.remove_fault(service, name)

    async def clear_faults(self, service: str | None = None) -> None:
        await self.desks.faults.clear_faults(service)

    async def scenarios(self) -> list[dict[str, Any]]:
        return await self.desks.scenarios.scenarios()

    async def start_scenario(self, name: str) -> None:
        await self.desks.scenarios.start_scenario(name)

    async def stop_scenario(self, name: str) -> None:
        await self.desks.scenarios.stop_scenario(name)

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        return await self.desks.recording.start_recording(service, to, filter)

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        return await self.desks.recording.stop_recording(service)
