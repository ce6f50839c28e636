"""The Engine: owns the services and their listeners; implements EngineControl in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from devamb import __version__
from devamb.control.bus import EventBus
from devamb.control.events import (
    EngineState,
    ExchangeCompleted,
    FaultsChanged,
    Notice,
    StatsTick,
    TargetSwitched,
)
from devamb.control.protocol import ControlError, Event, ExchangeSummary, Status
from devamb.faults.base import FaultContext
from devamb.faults.chain import FaultState
from devamb.faults.manager import FaultManager
from devamb.faults.scenario import ScenarioRun, ScenarioSpec, Step
from devamb.faults.spec import parse_fault_json
from devamb.inspect.curl import to_curl
from devamb.inspect.diff import diff_details
from devamb.inspect.exchange import Exchange
from devamb.inspect.filter import FilterError, compile_filter
from devamb.inspect.har import to_har
from devamb.inspect.recorder import Recorder
from devamb.inspect.redaction import Redaction
from devamb.inspect.replay import send_replay
from devamb.inspect.store import ExchangeStore
from devamb.metrics import render as render_metrics
from devamb.policies.request import RequestPolicy
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
        self.store = ExchangeStore(profile.record_budget)
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
        profile_secrets = self.profile.secrets
        try:
            for spec in self.profile.services.values():
                targets = {name: build_target(t, spec) for name, t in spec.targets.items()}
                for target in targets.values():
                    target.notify = self.notice
                    target.bind(targets)
                faults = FaultManager(
                    spec.name, spec.protocol, self.state.restored_faults(spec),
                    self.fault_context, header_faults=spec.header_faults,
                    on_change=self._faults_changed,
                )
                policy = RequestPolicy(spec, self.fault_context, self.notice)
                service = Service(
                    spec, targets, self.state.restored_target(spec), faults, policy,
                    profile_secrets,
                )
                self.store.configure(spec.name, spec.inspect.keep)
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

    # -- inspection --------------------------------------------------------------------------

    def _select(self, limit: int | None, filter_text: str | None) -> list[Exchange]:
        if not filter_text:
            return self.store.recent(limit) if limit is not None else self.store.all()
        matches = self._compile(filter_text)
        chosen = [e for e in self.store.all() if matches(e)]
        if limit is None:
            return chosen
        return chosen[-limit:] if limit > 0 else []

    @staticmethod
    def _compile(filter_text: str) -> Callable[[Exchange], bool]:
        try:
            return compile_filter(filter_text)
        except FilterError as exc:
            caret = " " * (exc.column - 1) + "^"
            raise ControlError(f"bad filter: {exc.message}\n  {filter_text}\n  {caret}") from None

    def _redaction(self, exchange: Exchange) -> Redaction:
        service = self.services.get(exchange.service)
        return service.redaction if service else Redaction(secrets=self.profile.secrets)

    def _recorded(self, exchange_id: int) -> Exchange:
        exchange = self.store.get(exchange_id)
        if exchange is None:
            raise ControlError(f"no exchange {exchange_id} (it may have aged out of the store)")
        return exchange

    def _listen_url(self, service: Service) -> str:
        host, port = service.bound or (service.spec.listen.host, service.spec.listen.port)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        return [self._redaction(e).summary(e) for e in self._select(limit, filter)]  # type: ignore[misc]

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        exchange = self._recorded(exchange_id)
        return self._redaction(exchange).detail(exchange)

    async def clear_exchanges(self) -> None:
        self.store.clear()

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        details = [self._redaction(e).detail(e) for e in self._select(None, filter)]
        base_urls = {name: self._listen_url(s) for name, s in self.services.items()}
        return to_har(details, __version__, base_urls=base_urls)

    async def export_curl(self, exchange_id: int) -> str:
        exchange = self._recorded(exchange_id)
        service = self.services.get(exchange.service)
        base = self._listen_url(service) if service else None
        detail = self._redaction(exchange).detail(exchange)
        target = service.targets.get(exchange.target) if service else None
        injected = {n.lower() for n in getattr(target.spec, "headers", {})} if target else set()
        if injected:  # the target adds these again behind the listener: leave them out
            detail["request_headers"] = [
                h for h in detail["request_headers"] if h[0].lower() not in injected
            ]
        return to_curl(detail, base)

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a recorded request again (to `target`, default its own); optionally diff."""
        original = self._recorded(exchange_id)
        service = self._service(original.service)
        target = target or original.target
        if target not in service.targets:
            known = ", ".join(service.targets)
            raise ControlError(f"service {service.name!r} has no target {target!r}; known: {known}")
        token = self.recorder.replay_token
        await send_replay(original, self._listen_url(service), target, token)
        copy = next(
            (e for e in reversed(self.store.all()) if e.replay_of == original.id), None
        )
        if copy is None:
            raise ControlError("the replay was sent but not recorded (store full?)")
        result: dict[str, Any] = {"exchange": service.redaction.summary(copy)}
        if diff:
            before, after = service.redaction.detail(original), service.redaction.detail(copy)
            differences = diff_details(before, after, ignore_fields=ignore or ())
            result["diff"] = [d.to_json() for d in differences]
        return result

    async def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        """Every event from now on; with a filter, only the exchanges that match it."""
        matches = self._compile(filter) if filter else None
        async for event in self.bus.subscribe():
            if matches is not None and (
                not isinstance(event, ExchangeCompleted) or not matches(event.record)
            ):
                continue
            yield event.to_json()

    async def shutdown(self) -> None:
        self._shutdown_requested.set()

    async def metrics(self) -> str:
        """Prometheus text format: per-service, per-target and per-endpoint counters."""
        return render_metrics(self.services.values())

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
