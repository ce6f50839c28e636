"""The Engine: owns the services and their listeners; implements EngineControl in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from devamb import __version__
from devamb.control.bus import EventBus
from devamb.control.events import (
    ConfigRejected,
    ConfigReloaded,
    EngineState,
    ExchangeCompleted,
    FaultsChanged,
    Notice,
    StatsTick,
    TargetSwitched,
)
from devamb.control.protocol import (
    Conflict,
    ControlError,
    Event,
    ExchangeSummary,
    NotFound,
    Status,
)
from devamb.engine.assembly import load_profile
from devamb.engine.metrics import render as render_metrics
from devamb.engine.reload import diff_profiles, watch_profile
from devamb.engine.state import RuntimeState
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
from devamb.inspect.masking import Redactor, update_log_secrets
from devamb.inspect.redaction import Redaction
from devamb.inspect.replay import check_replayable, send_replay
from devamb.inspect.store import ExchangeStore
from devamb.policies.request import RequestPolicy
from devamb.profile import ProfileError
from devamb.profile.schema import Profile, ServiceSpec
from devamb.service.core import Service
from devamb.service.http import SHUTDOWN_GRACE, HttpListener
from devamb.service.recorder import Recorder
from devamb.service.tcp import TcpListener
from devamb.targets.base import Target, TargetUnavailable
from devamb.targets.mock.recording import RecordingSession
from devamb.targets.registry import build_target

log = logging.getLogger("devamb.engine")
STATS_INTERVAL = 0.5
RETIRE_GRACE = 5.0  # seconds a replaced service's targets stay open for in-flight exchanges
STATUS_PROBE_WAIT = 1.0  # seconds status waits for first connect probes (they go on after)
Listener = HttpListener | TcpListener


def _count(per_service: dict[str, int]) -> str:
    total = sum(per_service.values())
    where = ", ".join(f"{name} {n}" for name, n in sorted(per_service.items()))
    return f"{total} exchange{'s' if total != 1 else ''} ({where})"


class Engine:
    def __init__(
        self,
        profile: Profile,
        *,
        state: RuntimeState | None = None,
        fault_context: FaultContext | None = None,
    ) -> None:
        self.profile = profile
        self.secrets = Redactor(profile.secrets)  # masks what status and notices quote
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
        self._recordings: dict[str, RecordingSession] = {}
        self._shutdown_requested = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.config_errors: list[str] = []  # a rejected profile change, until it is fixed
        self._reload_lock = asyncio.Lock()
        self.grace: float | None = None  # seconds a stop drains (None: see default_grace)
        self.drain_to_timeout = False  # the runner's engines drain for the longest timeout
        self.stop_report: dict[str, Any] = {"finished": 0, "cut": {}}
        self.started = time.time()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, watch: bool = False) -> None:
        """Start every service; if any listener cannot bind, undo everything and raise.

        With `watch`, the profile, `.env` and mock files are watched and reloaded on change.
        """
        try:
            for spec in self.profile.services.values():
                service = await self._build_service(spec, self.profile)
                self.services[spec.name] = service
                self._listeners[spec.name] = await self._listen(service)
                log.info("%s listening on %s -> %s", spec.name, service.listen, service.active)
        except BaseException:
            await self._close_services()
            raise
        for warning in self.profile.warnings:
            log.warning("%s", warning)
        for service in self.services.values():
            await self._activate(service)
        loop = asyncio.get_running_loop()
        self._ticker = loop.create_task(self._tick())
        if watch:
            self._watcher = loop.create_task(watch_profile(self))
        self.bus.publish(EngineState(state="running"))

    async def _build_service(
        self, spec: ServiceSpec, profile: Profile, runtime: Service | None = None
    ) -> Service:
        """A service with started targets. `runtime` hands over the runtime choices (active
        target, faults) and counters of the service it replaces, when its profile text is the
        same (only files it refers to, such as mocks, changed)."""
        targets = {name: build_target(t, spec) for name, t in spec.targets.items()}
        for target in targets.values():
            target.notify = self.notice
            target.replay_token = self.recorder.replay_token
            target.bind(targets)
        keep = runtime is not None and runtime.spec.fingerprint == spec.fingerprint
        if keep and runtime is not None:
            faults, active = runtime.faults, runtime.active
            if active not in targets:
                active = spec.target
        else:
            faults = FaultManager(
                spec.name, spec.protocol, self.state.restored_faults(spec), self.fault_context,
                header_faults=spec.header_faults, on_change=self._faults_changed,
            )
            active = self.state.restored_target(spec)
        policy = RequestPolicy(spec, self.fault_context, self.notice)
        service = Service(spec, targets, active, faults, policy, profile.secrets)
        if runtime is not None:
            service.counters = runtime.counters
        self.store.configure(spec.name, spec.inspect.keep)
        started: list[Target] = []
        try:
            for target in targets.values():
                await target.start()
                started.append(target)
        except BaseException:
            for target in started:
                await target.close()
            raise
        return service

    async def _activate(self, service: Service) -> None:
        """Let the active target prepare (a docker target with `run: on-switch` starts its
        container); a failure is a notice, not a reason to stop the engine."""
        try:
            await service.target().activate()
        except ControlError as exc:
            self.notice("warning", f"{service.name}: {exc.message}")

    async def _listen(self, service: Service) -> Listener:
        listener_cls = HttpListener if service.spec.protocol == "http" else TcpListener
        listener = listener_cls(service, self.recorder)
        await listener.start()
        return listener

    # -- live reload --------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Read the profile again and apply it; a bad profile is rejected whole (False).

        The file is read and validated in a worker thread, so that a large or hostile profile
        never stalls the listeners sharing this loop; reloads run one at a time."""
        async with self._reload_lock:
            try:
                profile = await asyncio.to_thread(load_profile, self.profile.path)
            except ProfileError as exc:
                self._reject([str(p) for p in exc.problems])
                return False
            except Exception as exc:  # a bug in validation must not end the watcher
                log.exception("reading the profile failed")
                self._reject([f"{self.profile.path}: cannot read the profile: {exc}"])
                return False
            return await self.apply(profile)

    def _reject(self, problems: list[str]) -> None:
        self.config_errors = problems
        self.bus.publish(ConfigRejected(errors=problems))
        self.notice("error", "profile change rejected; the previous configuration keeps serving:"
                    "\n" + "\n".join(problems))

    async def apply(self, profile: Profile) -> bool:
        """Apply a new profile as a diff: start added services, stop removed ones, swap changed
        ones whole (in-flight exchanges finish on the old ones). Nothing changes unless every
        new listener and target could start."""
        diff = diff_profiles(self.profile, profile)
        prepared: dict[str, tuple[Service, Listener | None]] = {}
        try:
            for name in (*diff.added, *diff.changed):
                spec = profile.services[name]
                old = self.services.get(name)
                service = await self._build_service(spec, profile, old)
                prepared[name] = (service, None)
                same_address = old is not None and (
                    old.spec.listen == spec.listen and old.spec.protocol == spec.protocol
                )
                if not same_address:
                    rebinding = old is not None and old.spec.listen == spec.listen
                    if rebinding:  # same address, other protocol: the old one must go first
                        await self._listeners.pop(name).stop()
                    prepared[name] = (service, await self._listen(service))
        except Exception as exc:
            for service, listener in prepared.values():
                if listener is not None:
                    await listener.stop()
                for target in service.targets.values():
                    await target.close()
            self._reject([f"cannot apply the change: {exc}"])
            return False
        retired: list[Service] = []
        for name in diff.removed:
            await self._listeners.pop(name).stop()
            retired.append(self.services[name])
        for name, (service, listener) in prepared.items():
            old = self.services.get(name)
            if listener is None and old is not None:
                current = self._listeners[name]
                service.bound = old.bound
                current.service = service  # type: ignore[assignment]  # the next exchange sees it
            else:
                if name in self._listeners:
                    await self._listeners.pop(name).stop()
                self._listeners[name] = listener  # type: ignore[assignment]
            if old is not None:
                retired.append(old)
        self.services = {
            name: prepared[name][0] if name in prepared else self.services[name]
            for name in profile.services
        }
        for name in diff.removed:
            self.store.configure(name, 0)
        self.profile = profile
        self.secrets = Redactor({*self.secrets.secrets, *profile.secrets})
        update_log_secrets(profile.secrets)
        self.store.budget = profile.record_budget
        self.config_errors = []
        for service, _ in prepared.values():
            await self._activate(service)
        loop = asyncio.get_running_loop()
        self._retiring.add(loop.create_task(self._retire(retired)))
        self.bus.publish(ConfigReloaded(added=list(diff.added), removed=list(diff.removed),
                                        changed=list(diff.changed)))
        if diff:
            self.notice("info", f"profile reloaded: {diff}")
        return True

    async def _retire(self, services: list[Service]) -> None:
        """Close replaced services' targets once their in-flight exchanges had time to end."""
        if services:
            await asyncio.sleep(RETIRE_GRACE)
        for service in services:
            for target in service.targets.values():
                await target.close()

    def default_grace(self) -> float:
        """How long a stop lets exchanges in flight finish: `grace` if set (`--grace`), else in
        an engine process the longest service timeout (by then each one has its answer or its
        504), else (in-process engines, tests) the listeners' short default."""
        if self.grace is not None:
            return self.grace
        if self.drain_to_timeout:
            return max((s.timeout for s in self.profile.services.values()), default=0.0)
        return SHUTDOWN_GRACE

    def in_flight(self) -> dict[str, int]:
        return {n: s.counters.active for n, s in self.services.items() if s.counters.active}

    async def stop(self, grace: float | None = None) -> dict[str, Any]:
        """Stop accepting, drain exchanges in flight for up to `grace` seconds (default
        `default_grace()`), then cut the rest; returns {finished, cut: {service: n}}."""
        if self._stopped.is_set():
            return self.stop_report
        grace = self.default_grace() if grace is None else grace
        self.bus.publish(EngineState(state="stopping"))
        for run in self._scenarios.values():
            if run.task is not None:
                run.task.cancel()
        for task in (self._ticker, self._watcher, *self._retiring):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        in_flight = self.in_flight()
        if in_flight:
            log.info("stopping: waiting up to %gs for %s in flight", grace, _count(in_flight))
        cut = await self._close_services(grace)
        finished = sum(in_flight.values()) - sum(cut.values())
        if cut:
            log.warning("stopping: cut %s still in flight after %gs", _count(cut), grace)
        elif in_flight:
            log.info("stopping: every exchange in flight finished")
        self.stop_report = {"finished": max(finished, 0), "cut": cut}
        self.bus.close()
        self._stopped.set()
        return self.stop_report

    async def _close_services(self, grace: float = 0.0) -> dict[str, int]:
        """Stop every listener (HTTP exchanges get `grace` seconds; TCP connections close at
        once: an idle pooled connection looks like a busy one) and close the targets.
        Returns the exchanges or connections cut, per service."""
        names = list(self._listeners)
        counts = await asyncio.gather(
            *(self._stop_listener(name, self._listeners[name], grace) for name in names)
        )
        self._listeners.clear()
        for service in self.services.values():
            for target in service.targets.values():
                await target.close()
        return {name: n for name, n in zip(names, counts, strict=True) if n}

    async def _stop_listener(self, name: str, listener: Listener, grace: float) -> int:
        if isinstance(listener, HttpListener):
            return await listener.stop(grace)
        service = self.services.get(name)
        open_connections = service.counters.active if service is not None else 0
        await listener.stop()
        return open_connections

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
        message = self.secrets(message)  # a host name built from ${VAR}, for one
        log.log(logging.getLevelName(level.upper()), "%s", message)
        self.bus.publish(Notice(level=level, message=message))

    # -- EngineControl -----------------------------------------------------------------------

    async def status(self) -> Status:
        await self._refresh_targets()
        return self.secrets.walk({  # type: ignore[no-any-return]
            "profile": str(self.profile.path),
            "name": self.profile.name,
            "engine": {"pid": os.getpid(), "version": __version__, "started": self.started},
            "services": [s.status() for s in self.services.values()],
            "scenarios": [self._scenario_run(n).to_json() for n in self.profile.scenarios],
            "recordings": [r.to_json() for r in self._recordings.values()],
            "errors": list(self.config_errors),
        })

    async def _refresh_targets(self) -> None:
        """Probe targets whose reachability is unknown or failing; wait (briefly) only for
        the unknown ones, so the first status already says what is there."""
        probes = [
            probe
            for service in self.services.values()
            for target in service.targets.values()
            if (probe := target.refresh()) is not None
        ]
        if probes:
            await asyncio.wait(probes, timeout=STATUS_PROBE_WAIT)

    async def switch(self, service: str, target: str) -> None:
        svc = self.services.get(service)
        if svc is None:
            known = ", ".join(self.services)
            raise NotFound(f"no service {service!r}; known: {known}")
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
            raise NotFound(f"no exchange {exchange_id} (it may have aged out of the store)")
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
        check_replayable(original)
        service = self._service(original.service)
        target = target or original.target
        if target not in service.targets:
            known = ", ".join(service.targets)
            raise NotFound(f"service {service.name!r} has no target {target!r}; known: {known}")
        token = self.recorder.replay_token
        await send_replay(original, self._listen_url(service), target, token)
        copy = next(
            (e for e in reversed(self.store.all()) if e.replay_of == original.id), None
        )
        if copy is None:
            raise Conflict("the replay was sent but not recorded (store full?)")
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

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        if grace is not None:
            self.grace = grace
        report: dict[str, Any] = {"grace": self.default_grace(), "in_flight": self.in_flight()}
        self._shutdown_requested.set()
        if wait:
            await self._stopped.wait()
            report.update(self.stop_report)
        return report

    async def close(self) -> None:
        """In-process: nothing to release (EngineControl.close is for the socket client)."""

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        """Log lines of a docker target's containers (the last `tail`, then new ones)."""
        svc = self._service(service)
        chosen = svc.targets.get(target)
        if chosen is None:
            known = ", ".join(svc.targets)
            raise NotFound(f"service {service!r} has no target {target!r}; known: {known}")
        logs = getattr(chosen, "logs", None)
        if logs is None:
            raise ControlError(f"target {target!r} of {service!r} is not a docker target")
        try:
            async for line in logs(tail=tail, follow=follow):
                yield line
        except TargetUnavailable as exc:
            raise Conflict(exc.reason) from None

    # -- recording mocks -------------------------------------------------------------------

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        """Turn the service's exchanges from now on into mock routes (written by stop)."""
        svc = self._service(service)
        if svc.spec.protocol != "http":
            raise ControlError(f"service {service!r} is tcp: only HTTP exchanges become mocks")
        folder = self.profile.path.resolve().parent
        path = Path(to) if to else Path("mocks") / f"{service}.yaml"
        path = path if path.is_absolute() else folder / path
        if filter:
            self._compile(filter)  # a bad filter is refused with its column
        served = getattr(svc.target().spec, "watched_files", lambda: ())()
        if path.resolve() in {Path(f).resolve() for f in served}:
            raise Conflict(f"{service!r} is answered by the mock in {path} right now: "
                           f"recording would overwrite it with its own answers")
        if service in self._recordings:
            raise Conflict(f"{service!r} is already being recorded into "
                           f"{self._recordings[service].to}; stop that recording first")
        session = RecordingSession(service, filter, path, notify=self.notice)
        if not self._recordings:
            self.recorder.watchers.append(self._record)
        self._recordings[service] = session
        self.notice("info", f"recording {service} into {path}")
        return session.to_json()

    def _record(self, service: Service, exchange: Exchange) -> None:
        session = self._recordings.get(service.name)
        if session is not None:
            session.add(exchange, service.redaction)

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        """Write the mock file of each recording stopped; returns what was written."""
        names = [service] if service else list(self._recordings)
        if service and service not in self._recordings:
            raise Conflict(f"{service!r} is not being recorded")
        written = []
        for name in names:
            session = self._recordings.pop(name)
            path = await asyncio.to_thread(session.write)
            written.append({**session.to_json(), "file": str(path)})
            self.notice("info", f"recorded {len(session.observed)} exchanges of {name} "
                        f"into {path}")
        if not self._recordings and self._record in self.recorder.watchers:
            self.recorder.watchers.remove(self._record)
        return written

    async def metrics(self) -> str:
        """Prometheus text format: per-service, per-target and per-endpoint counters."""
        return self.secrets(render_metrics(self.services.values()))  # labels quote hosts

    # -- faults and scenarios ----------------------------------------------------------------

    def _service(self, name: str) -> Service:
        service = self.services.get(name)
        if service is None:
            raise NotFound(f"no service {name!r}; known: {', '.join(self.services)}")
        return service

    def _fault_name(self, service: Service, name: str) -> FaultState:
        state = service.faults.get(name)
        if state is None:
            known = ", ".join(service.faults.names()) or "none"
            raise NotFound(f"service {service.name!r} has no fault {name!r}; known: {known}")
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
            raise NotFound(f"no scenario {name!r}; known: {known}")
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
        """Remove what the scenario added; the profile's faults of the services it touched go
        back as the profile defines them (also those a `remove` or `clear` step took away)."""
        for name in dict.fromkeys(step.service for step in spec.steps):
            service = self.services.get(name)
            if service is None:
                continue
            faults = service.faults
            for step in spec.steps:
                added = step.fault if step.action == "add" and step.service == name else None
                if added is not None and added.name not in service.spec.faults:
                    faults.remove(added.name)
            for fault_name, defined in service.spec.faults.items():
                state = faults.get(fault_name)
                if state is None or state.spec != defined:
                    faults.add(defined)
                else:
                    faults.set_enabled(fault_name, defined.enabled)
