"""The Engine: owns the services and their listeners; implements EngineControl in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from devamb import __version__
from devamb.control.bus import EventBus
from devamb.control.events import EngineState, FaultsChanged, Notice, StatsTick, TargetSwitched
from devamb.control.protocol import ControlError, Event, ExchangeSummary, Status
from devamb.faults.base import FaultContext
from devamb.faults.chain import FaultState
from devamb.faults.manager import FaultManager
from devamb.faults.scenario import ScenarioRun, ScenarioSpec, Step
from devamb.faults.spec import parse_fault_json
from devamb.inspect.recorder import Recorder
from devamb.inspect.store import ExchangeStore
from devamb.profile.schema import Profile
from devamb.proxy.http import HttpListener
from devamb.proxy.tcp import TcpListener
from devamb.service import Service
from devamb.state import RuntimeState
from devamb.targets.registry import build_target

log = logging.getLogger("devamb.engine")
STATS_INTERVAL = 0.5
Listener = HttpListener | TcpListener


class Engine:
    def __init__(
        self,
        profile: Profile,
        *,
        state: RuntimeState | None = None,
        fault_context: FaultContext | None = None,
    ) -> None:
        self.profile = profile
        self.state = state or RuntimeState(None)
        self.fault_context = fault_context or FaultContext()
        self.bus = EventBus()
        self.store = ExchangeStore()
        self.recorder = Recorder(self.store, self.bus)
        self.services: dict[str, Service] = {}
        self._listeners: dict[str, Listener] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._scenarios: dict[str, ScenarioRun] = {}
        self._shutdown_requested = asyncio.Event()
        self.started = time.time()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every service; if any listener cannot bind, undo everything and raise."""
        try:
            for spec in self.profile.services.values():
                targets = {name: build_target(t, spec) for name, t in spec.targets.items()}
                for target in targets.values():
                    target.notify = self.notice
                faults = FaultManager(
                    spec.name, spec.protocol, self.state.restored_faults(spec),
                    self.fault_context, header_faults=spec.header_faults,
                    on_change=self._faults_changed,
                )
                service = Service(spec, targets, self.state.restored_target(spec), faults)
                self.services[spec.name] = service
                for target in targets.values():
                    await target.start()
                listener_cls = HttpListener if spec.protocol == "http" else TcpListener
                listener = listener_cls(service, self.recorder)
                await listener.start()
                self._listeners[spec.name] = listener
                log.info("%s listening on %s -> %s", spec.name, service.listen, service.active)
        except BaseException:
            await self._close_services()
            raise
        for warning in self.profile.warnings:
            log.warning("%s", warning)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        self.bus.publish(EngineState(state="running"))

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self.bus.publish(EngineState(state="stopping"))
        for run in self._scenarios.values():
            if run.task is not None:
                run.task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._close_services()
        self.bus.close()
        self._stopped.set()

    async def _close_services(self) -> None:
        await asyncio.gather(*(lst.stop() for lst in self._listeners.values()))
        self._listeners.clear()
        for service in self.services.values():
            for target in service.targets.values():
                await target.close()

    async def wait_shutdown_requested(self) -> None:
        await self._shutdown_requested.wait()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            for service in self.services.values():
                service.faults.tick()
            if self.bus.has_subscribers:
                stats = {name: s.counters.snapshot() for name, s in self.services.items()}
                self.bus.publish(StatsTick(stats))

    def _faults_changed(self, service: str, why: str | None) -> None:
        svc = self.services.get(service)
        if svc is None:  # during start-up
            return
        self.state.remember_faults(svc.spec, svc.faults.chain.states)
        self.bus.publish(FaultsChanged(service=service, faults=svc.faults.list()))
        if why:
            self.notice("info", why)

    def notice(self, level: str, message: str) -> None:
        """Something the developer should see: logged, and shown by the TUI as a notification."""
        log.log(logging.getLevelName(level.upper()), "%s", message)
        self.bus.publish(Notice(level=level, message=message))

    # -- EngineControl -----------------------------------------------------------------------

    async def status(self) -> Status:
        return {
            "profile": str(self.profile.path),
            "name": self.profile.name,
            "engine": {"pid": os.getpid(), "version": __version__, "started": self.started},
            "services": [s.status() for s in self.services.values()],
            "scenarios": [self._scenario_run(n).to_json() for n in self.profile.scenarios],
            "errors": [],
        }

    async def switch(self, service: str, target: str) -> None:
        svc = self.services.get(service)
        if svc is None:
            known = ", ".join(self.services)
            raise ControlError(f"no service {service!r}; known: {known}")
        if target in svc.targets:
            await svc.targets[target].activate()
        previous = svc.switch(target)
        self.state.remember(svc.spec, target)
        log.info("%s switched %s -> %s", service, previous, target)
        self.bus.publish(TargetSwitched(service=service, target=target, previous=previous))

    async def exchanges(self, limit: int = 100) -> list[ExchangeSummary]:
        return [e.to_json() for e in self.store.recent(limit)]

    async def events(self) -> AsyncIterator[Event]:
        async for event in self.bus.subscribe():
            yield event.to_json()

    async def shutdown(self) -> None:
        self._shutdown_requested.set()

    # -- faults and scenarios ----------------------------------------------------------------

    def _service(self, name: str) -> Service:
        service = self.services.get(name)
        if service is None:
            raise ControlError(f"no service {name!r}; known: {', '.join(self.services)}")
        return service

    def _fault_name(self, service: Service, name: str) -> FaultState:
        state = service.faults.get(name)
        if state is None:
            known = ", ".join(service.faults.names()) or "none"
            raise ControlError(f"service {service.name!r} has no fault {name!r}; known: {known}")
        return state

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        services = [self._service(service)] if service else list(self.services.values())
        return {s.name: s.faults.list() for s in services}

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        svc = self._service(service)
        data = dict(fault)
        name = str(data.pop("name", "") or self._free_fault_name(svc, str(data.get("kind"))))
        spec = parse_fault_json(name, data, svc.spec.protocol)
        svc.faults.add(spec)
        log.info("fault %s added to %s: %s", name, service, spec.kind)
        return svc.faults.get(name).to_json()  # type: ignore[union-attr]

    @staticmethod
    def _free_fault_name(service: Service, kind: str) -> str:
        taken = set(service.faults.names())
        name, n = kind, 2
        while name in taken:
            name, n = f"{kind}-{n}", n + 1
        return name

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        svc = self._service(service)
        self._fault_name(svc, name)
        svc.faults.set_enabled(name, enabled)

    async def remove_fault(self, service: str, name: str) -> None:
        svc = self._service(service)
        self._fault_name(svc, name)
        svc.faults.remove(name)

    async def clear_faults(self, service: str | None = None) -> None:
        for svc in [self._service(service)] if service else self.services.values():
            svc.faults.clear()

    async def scenarios(self) -> list[dict[str, Any]]:
        return [self._scenario_run(name).to_json() for name in self.profile.scenarios]

    def _scenario_run(self, name: str) -> ScenarioRun:
        spec = self.profile.scenarios.get(name)
        if spec is None:
            known = ", ".join(self.profile.scenarios) or "none"
            raise ControlError(f"no scenario {name!r}; known: {known}")
        run = self._scenarios.get(name)
        if run is None:
            run = self._scenarios[name] = ScenarioRun(
                spec, self._apply_step, self._undo_scenario,
                sleep=self.fault_context.sleep, clock=self.fault_context.clock,
            )
        return run

    async def start_scenario(self, name: str) -> None:
        run = self._scenario_run(name)
        if not run.running:
            run.start()
            self.notice("info", f"scenario {name!r} started")

    async def stop_scenario(self, name: str) -> None:
        run = self._scenario_run(name)
        if run.running:
            await run.stop()
            self.notice("info", f"scenario {name!r} stopped")

    def _apply_step(self, step: Step) -> None:
        faults = self.services[step.service].faults
        if step.action == "add" and step.fault is not None:
            faults.add(step.fault)
        elif step.action in ("on", "off") and step.name:
            faults.set_enabled(step.name, step.action == "on")
        elif step.action == "remove" and step.name:
            faults.remove(step.name)
        elif step.action == "clear":
            for name in faults.names():
                if name not in self.services[step.service].spec.faults:
                    faults.remove(name)  # what was added at runtime; profile faults stay
                else:
                    faults.set_enabled(name, False)

    def _undo_scenario(self, spec: ScenarioSpec) -> None:
        """Remove what the scenario added; profile faults go back to their profile state."""
        for step in spec.steps:
            faults = self.services[step.service].faults
            if step.action == "add" and step.fault is not None:
                faults.remove(step.fault.name)
            elif step.action in ("on", "off", "clear") and step.name:
                defined = self.services[step.service].spec.faults.get(step.name)
                if defined is not None:
                    faults.set_enabled(step.name, defined.enabled)
