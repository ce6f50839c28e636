"""The engine's life: start (build, listen, activate), live reload (apply a profile as a diff,
retire what it replaced), stop (drain, then cut), and shutdown requests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devamb.control.events import ConfigRejected, ConfigReloaded, EngineState, StatsTick
from devamb.control.protocol import Conflict, ControlError, NotFound
from devamb.engine.assembly import Profile, load_profile
from devamb.engine.context import EngineContext
from devamb.engine.memory import Reclaimer
from devamb.engine.reload import diff_profiles, watch_profile
from devamb.faults.manager import FaultManager
from devamb.inspect.masking import Redactor, update_log_secrets
from devamb.policies.request import RequestPolicy
from devamb.profile import ProfileError
from devamb.profile.schema import ListenAddress
from devamb.proxy.upstream import release_read_buffers
from devamb.service.core import Service
from devamb.service.http import SHUTDOWN_GRACE, HttpListener
from devamb.service.spec import ServiceSpec
from devamb.service.tcp import TcpListener
from devamb.targets.base import Target
from devamb.targets.registry import build_targets

if TYPE_CHECKING:
    from devamb.service.http2 import Http2Listener

    Listener = HttpListener | Http2Listener | TcpListener

log = logging.getLogger("devamb.engine")
STATS_INTERVAL = 0.5
RETIRE_GRACE = 5.0  # seconds a replaced service's targets stay open for in-flight exchanges
LISTENERS: dict[str, type[HttpListener | TcpListener]] = {
    "http": HttpListener, "tcp": TcpListener, "postgres": TcpListener, "redis": TcpListener,
}


def listener_class(protocol: str) -> type[Listener]:
    """The listener of a service protocol; HTTP/2's (with h2 and gRPC) is imported when a
    profile has an http2 or grpc service (issue 22)."""
    if protocol in ("http2", "grpc"):
        from devamb.service.http2 import Http2Listener

        return Http2Listener
    return LISTENERS[protocol]
FaultsChanged = Callable[[str, str | None], None]  # (service, why): a service's faults changed


def _count(per_service: dict[str, int]) -> str:
    total = sum(per_service.values())
    where = ", ".join(f"{name} {n}" for name, n in sorted(per_service.items()))
    return f"{total} exchange{'s' if total != 1 else ''} ({where})"


class Lifecycle:
    """The state machine of one engine: starting -> running (reloads) -> stopping -> stopped.

    It knows no desk: `faults_changed` is called when a service's faults change, `stopping`
    when a stop begins (the engine ends the scenarios there)."""

    def __init__(
        self,
        ctx: EngineContext,
        *,
        faults_changed: FaultsChanged,
        stopping: Callable[[], None],
    ) -> None:
        self.ctx = ctx
        self._faults_changed = faults_changed
        self._stopping = stopping
        self.listeners: dict[str, Listener] = {}
        self.retiring: set[asyncio.Task[None]] = set()
        self.reclaimer = Reclaimer()  # the heap's free pages back after bursts
        self.grace: float | None = None  # seconds a stop drains (None: see default_grace)
        self.drain_to_timeout = False  # the runner's engines drain for the longest timeout
        self.stop_report: dict[str, Any] = {"finished": 0, "cut": {}}
        self._ticker: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._shutdown_requested = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._cut_now = False  # a second stop request: the drain ends at once
        self.runtime: dict[str, ServiceSpec] = {}  # services added at run time (Toxiproxy API)

    @property
    def profile(self) -> Profile:
        """The profile in force (what the file watcher reloads)."""
        return self.ctx.profile

    # -- starting ------------------------------------------------------------------------------

    async def start(self, *, watch: bool = False) -> None:
        """Start every service; if any listener cannot bind, undo everything and raise.

        With `watch`, the profile, `.env` and mock files are watched and reloaded on change.
        """
        ctx = self.ctx
        await ctx.tunnels.update(ctx.profile.bastions)  # connections open on first use
        try:
            for spec in ctx.profile.services.values():
                service = await self._build_service(spec, ctx.profile)
                ctx.services[spec.name] = service
                self.listeners[spec.name] = await self._listen(service)
                log.info("%s listening on %s -> %s", spec.name, service.listen, service.active)
        except BaseException:
            await self._close_services()
            raise
        for warning in ctx.profile.warnings:
            log.warning("%s", warning)
        for service in ctx.services.values():
            await self._activate(service)
        loop = asyncio.get_running_loop()
        self._ticker = loop.create_task(self._tick())
        if watch:
            self._watcher = loop.create_task(watch_profile(self))
        ctx.bus.publish(EngineState(state="running"))

    async def _build_service(
        self, spec: ServiceSpec, profile: Profile, runtime: Service | None = None
    ) -> Service:
        """A service with started targets. `runtime` hands over the runtime choices (active
        target, faults) and counters of the service it replaces, when its profile text is the
        same (only files it refers to, such as mocks, changed)."""
        ctx = self.ctx
        context = spec.target_context(ctx.notice, ctx.recorder.replay_token, ctx.tunnels)
        targets = build_targets(spec.targets, context)
        keep = runtime is not None and runtime.spec.fingerprint == spec.fingerprint
        if keep and runtime is not None:
            faults, active = runtime.faults, runtime.active
            if active not in targets:
                active = spec.target
        else:
            faults = FaultManager(
                spec.name, spec.protocol, ctx.state.restored_faults(spec), ctx.fault_context,
                header_faults=spec.header_faults, on_change=self._faults_changed,
            )
            active = ctx.state.restored_target(spec)
        policy = RequestPolicy(spec, ctx.fault_context, ctx.notice)
        service = Service(spec, targets, active, faults, policy, profile.secrets)
        if runtime is not None:
            service.counters = runtime.counters
        ctx.store.configure(spec.name, spec.inspect.keep)
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
            self.ctx.notice("warning", f"{service.name}: {exc.message}")

    async def _listen(self, service: Service) -> Listener:
        listener = listener_class(service.spec.protocol)(service, self.ctx.recorder)
        await listener.start()
        return listener

    async def _tick(self) -> None:
        ctx = self.ctx
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            for service in ctx.services.values():
                service.faults.tick()
            self.reclaimer.tick(ctx.store.added)
            release_read_buffers()  # (the upstream reads' buffers no read is using: their pages)
            if ctx.bus.has_subscribers:
                stats = {name: s.counters.snapshot() for name, s in ctx.services.items()}
                ctx.bus.publish(StatsTick(stats))

    # -- live reload ---------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Read the profile again and apply it; a bad profile is rejected whole (False).

        The file is read and validated in a worker thread, so that a large or hostile profile
        never stalls the listeners sharing this loop; reloads run one at a time."""
        async with self._reload_lock:
            path = self.ctx.profile.path
            try:
                profile = await asyncio.to_thread(load_profile, path)
            except ProfileError as exc:
                self._add_secrets(exc.secrets)  # a problem may quote a value from ${VAR}
                self._reject([str(p) for p in exc.problems])
                return False
            except Exception as exc:  # a bug in validation must not end the watcher
                log.exception("reading the profile failed")
                self._reject([f"{path}: cannot read the profile: {exc}"])
                return False
            return await self.apply(profile)

    def _reject(self, problems: list[str]) -> None:
        self.ctx.config_errors = problems
        self.ctx.bus.publish(ConfigRejected(errors=problems))
        self.ctx.notice("error", "profile change rejected; the previous configuration keeps "
                        "serving:\n" + "\n".join(problems))

    async def apply(self, profile: Profile) -> bool:
        """Apply a new profile as a diff: start added services, stop removed ones, swap changed
        ones whole (in-flight exchanges finish on the old ones). Nothing changes unless every
        new listener and target could start."""
        ctx = self.ctx
        profile = self._with_runtime(profile)
        self._add_secrets(profile.secrets)  # before anything can fail with a message quoting one
        diff = diff_profiles(ctx.profile, profile)
        await ctx.tunnels.update(profile.bastions)  # a changed bastion reconnects on next use
        prepared: dict[str, tuple[Service, Listener | None]] = {}
        try:
            for name in (*diff.added, *diff.changed):
                spec = profile.services[name]
                old = ctx.services.get(name)
                service = await self._build_service(spec, profile, old)
                prepared[name] = (service, None)
                same_address = old is not None and (
                    old.spec.listen == spec.listen and old.spec.protocol == spec.protocol
                )
                if not same_address:
                    rebinding = old is not None and old.spec.listen == spec.listen
                    if rebinding:  # same address, other protocol: the old one must go first
                        await self.listeners.pop(name).stop()
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
            await self.listeners.pop(name).stop()
            retired.append(ctx.services[name])
        for name, (service, listener) in prepared.items():
            old = ctx.services.get(name)
            if listener is None:  # same address and protocol: the listener stays
                assert old is not None  # an added service always got a listener
                current = self.listeners[name]
                service.bound = old.bound
                current.service = service  # the next exchange sees it
            else:
                if name in self.listeners:
                    await self.listeners.pop(name).stop()
                self.listeners[name] = listener
            if old is not None:
                retired.append(old)
        ctx.services = {
            name: prepared[name][0] if name in prepared else ctx.services[name]
            for name in profile.services
        }
        for name in diff.removed:
            ctx.store.configure(name, 0)
        ctx.profile = profile
        ctx.store.budget = profile.record_budget
        ctx.config_errors = []
        for service, _ in prepared.values():
            await self._activate(service)
        loop = asyncio.get_running_loop()
        self.retiring.add(loop.create_task(self._retire(retired)))
        ctx.bus.publish(ConfigReloaded(added=list(diff.added), removed=list(diff.removed),
                                       changed=list(diff.changed)))
        if diff:
            ctx.notice("info", f"profile reloaded: {diff}")
        return True

    def _with_runtime(self, profile: Profile) -> Profile:
        """`profile` plus the services added at run time (a service of the file wins)."""
        for name in [n for n in self.runtime if n in profile.services]:
            del self.runtime[name]  # the file now defines it: the file's service replaces it
        if not self.runtime:
            return profile
        return dataclasses.replace(profile, services={**self.runtime, **profile.services})

    # -- services added at run time (not from the profile's file) -------------------------------

    async def add_service(self, spec: ServiceSpec) -> Service:
        """Build, bind and start one more service; it lives until removed (reloads keep it).
        Raises ControlError (a name taken), or the listener's ListenError."""
        async with self._reload_lock:
            ctx = self.ctx
            if spec.name in ctx.services:
                raise Conflict(f"a service named {spec.name!r} exists already")
            service = await self._build_service(spec, ctx.profile)
            try:
                listener = await self._listen(service)
            except BaseException:
                for target in service.targets.values():
                    await target.close()
                raise
            if spec.listen.port == 0 and service.bound is not None:  # keep the port it got,
                listen = ListenAddress(spec.listen.host, service.bound[1])  # for a restart
                spec = service.spec = dataclasses.replace(spec, listen=listen)
            self.runtime[spec.name] = spec
            ctx.services[spec.name] = service
            self.listeners[spec.name] = listener
            ctx.profile = dataclasses.replace(
                ctx.profile, services={**ctx.profile.services, spec.name: spec}
            )
            await self._activate(service)
            log.info("%s listening on %s -> %s (added at run time)", spec.name, service.listen,
                     service.active)
            ctx.bus.publish(ConfigReloaded(added=[spec.name], removed=[], changed=[]))
            return service

    async def remove_service(self, name: str) -> None:
        """Stop and forget a service added at run time (its connections are closed)."""
        async with self._reload_lock:
            ctx = self.ctx
            if name not in self.runtime:
                raise NotFound(f"no service {name!r} added at run time")
            del self.runtime[name]
            listener = self.listeners.pop(name, None)
            if listener is not None:
                await listener.stop()
            service = ctx.services.pop(name)
            ctx.profile = dataclasses.replace(
                ctx.profile, services={n: s for n, s in ctx.profile.services.items() if n != name}
            )
            ctx.store.configure(name, 0)
            for target in service.targets.values():
                await target.close()
            ctx.bus.publish(ConfigReloaded(added=[], removed=[name], changed=[]))

    async def set_listening(self, name: str, listening: bool) -> None:
        """Stop a service's listener (closing its connections) or start it again."""
        async with self._reload_lock:
            listener = self.listeners.get(name)
            if listener is None:
                raise NotFound(f"no service {name!r}")
            if listening and self.ctx.services[name].bound is None:
                await listener.start()
            elif not listening and self.ctx.services[name].bound is not None:
                await listener.stop()

    def _add_secrets(self, secrets: frozenset[str]) -> None:
        """Mask a new profile's secrets too, from now on, in status, events and the log; those
        of the profiles before stay masked (a message may still quote one)."""
        ctx = self.ctx
        if not {s for s in secrets if s} <= set(ctx.secrets.secrets):
            ctx.secrets = Redactor({*ctx.secrets.secrets, *secrets})
        update_log_secrets(secrets)

    async def _retire(self, services: list[Service]) -> None:
        """Close replaced services' targets once their in-flight exchanges had time to end."""
        if services:
            await asyncio.sleep(RETIRE_GRACE)
        for service in services:
            for target in service.targets.values():
                await target.close()

    # -- stopping ------------------------------------------------------------------------------

    def default_grace(self) -> float:
        """How long a stop lets exchanges in flight finish: `grace` if set (`--grace`), else in
        an engine process the longest service timeout (by then each one has its answer or its
        504), else (in-process engines, tests) the listeners' short default."""
        if self.grace is not None:
            return self.grace
        if self.drain_to_timeout:
            return max((s.timeout for s in self.ctx.profile.services.values()), default=0.0)
        return SHUTDOWN_GRACE

    def in_flight(self) -> dict[str, int]:
        return {n: s.counters.active for n, s in self.ctx.services.items() if s.counters.active}

    async def stop(self, grace: float | None = None) -> dict[str, Any]:
        """Stop accepting, drain exchanges in flight for up to `grace` seconds (default
        `default_grace()`), then cut the rest; returns {finished, cut: {service: n}}."""
        if self._stopped.is_set():
            return self.stop_report
        grace = self.default_grace() if grace is None else grace
        if self._cut_now:
            grace = 0.0
        self.ctx.bus.publish(EngineState(state="stopping"))
        self._stopping()
        for task in (self._ticker, self._watcher, *self.retiring):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        in_flight = self.in_flight()
        if in_flight:
            log.info("stopping: waiting up to %gs for %s in flight", grace, _count(in_flight))
        cut = await self._close_services(grace)
        await self.ctx.tunnels.close()
        finished = sum(in_flight.values()) - sum(cut.values())
        if cut:
            log.warning("stopping: cut %s still in flight after %gs", _count(cut), grace)
        elif in_flight:
            log.info("stopping: every exchange in flight finished")
        self.stop_report = {"finished": max(finished, 0), "cut": cut}
        self.ctx.bus.close()
        self._stopped.set()
        return self.stop_report

    async def _close_services(self, grace: float = 0.0) -> dict[str, int]:
        """Stop every listener (HTTP exchanges get `grace` seconds; TCP connections close at
        once: an idle pooled connection looks like a busy one) and close the targets.
        Returns the exchanges or connections cut, per service."""
        names = list(self.listeners)
        counts = await asyncio.gather(
            *(self._stop_listener(name, self.listeners[name], grace) for name in names)
        )
        self.listeners.clear()
        for service in self.ctx.services.values():
            for target in service.targets.values():
                await target.close()
        return {name: n for name, n in zip(names, counts, strict=True) if n}

    async def _stop_listener(self, name: str, listener: Listener, grace: float) -> int:
        if not isinstance(listener, TcpListener):  # HTTP/1 or HTTP/2
            return await listener.stop(grace)
        service = self.ctx.services.get(name)
        open_connections = service.counters.active if service is not None else 0
        await listener.stop()
        return open_connections

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        """A stop requested (by the control API, a signal, the end of the TUI): the runner
        waiting in `wait_shutdown_requested` does it; with `wait`, after the drain."""
        if grace is not None:
            self.grace = grace
        report: dict[str, Any] = {"grace": self.default_grace(), "in_flight": self.in_flight()}
        self._shutdown_requested.set()
        if wait:
            await self._stopped.wait()
            report.update(self.stop_report)
        return report

    async def wait_shutdown_requested(self) -> None:
        await self._shutdown_requested.wait()

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested.is_set()

    def cut_now(self) -> None:
        """End the drain now (a second Ctrl-C): exchanges still in flight are cut. Before the
        drain has begun, the stop that follows drains for no time."""
        if self._stopped.is_set():
            return
        self._cut_now = True
        for listener in self.listeners.values():
            if not isinstance(listener, TcpListener):
                listener.hurry()
