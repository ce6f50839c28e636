"""The Engine: owns the services and their listeners; implements EngineControl in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator

from devamb import __version__
from devamb.control.bus import EventBus
from devamb.control.events import EngineState, Notice, StatsTick, TargetSwitched
from devamb.control.protocol import ControlError, Event, ExchangeSummary, Status
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
    def __init__(self, profile: Profile, *, state: RuntimeState | None = None) -> None:
        self.profile = profile
        self.state = state or RuntimeState(None)
        self.bus = EventBus()
        self.store = ExchangeStore()
        self.recorder = Recorder(self.store, self.bus)
        self.services: dict[str, Service] = {}
        self._listeners: dict[str, Listener] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
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
                service = Service(spec, targets, self.state.restored_target(spec))
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
            if self.bus.has_subscribers:
                stats = {name: s.counters.snapshot() for name, s in self.services.items()}
                self.bus.publish(StatsTick(stats))

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
