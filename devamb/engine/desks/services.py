"""The service desk: status, switching a service's target, metrics, container logs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator

from devamb import __version__
from devamb.control.events import TargetSwitched
from devamb.control.protocol import Conflict, NotFound, Status
from devamb.engine.context import EngineContext
from devamb.engine.desks.recording import RecordingDesk
from devamb.engine.desks.scenarios import ScenarioDesk
from devamb.engine.metrics import render as render_metrics
from devamb.targets.base import TargetUnavailable

log = logging.getLogger("devamb.engine")
STATUS_PROBE_WAIT = 1.0  # seconds status waits for first connect probes (they go on after)


class ServiceDesk:
    def __init__(
        self, ctx: EngineContext, scenarios: ScenarioDesk, recording: RecordingDesk
    ) -> None:
        self.ctx = ctx
        self.scenarios = scenarios  # status shows their runs
        self.recording = recording  # and the recordings in progress

    async def status(self) -> Status:
        await self._refresh_targets()
        ctx = self.ctx
        status: Status = {
            "profile": str(ctx.profile.path),
            "name": ctx.profile.name,
            "engine": {"pid": os.getpid(), "version": __version__, "started": ctx.started},
            "services": [s.status() for s in ctx.services.values()],
            "scenarios": self.scenarios.to_json(),
            "recordings": self.recording.to_json(),
            "errors": list(ctx.config_errors),
            "bastions": ctx.tunnels.status(),
        }
        return ctx.secrets.walk(status)  # the same shape, every string masked

    async def _refresh_targets(self) -> None:
        """Probe targets whose reachability is unknown or failing; wait (briefly) only for
        the unknown ones, so the first status already says what is there."""
        probes = [
            probe
            for service in self.ctx.services.values()
            for target in service.targets.values()
            if (probe := target.refresh()) is not None
        ]
        if probes:
            await asyncio.wait(probes, timeout=STATUS_PROBE_WAIT)

    async def switch(self, service: str, target: str, on_switch: str | None = None) -> None:
        svc = self.ctx.service(service)
        if target in svc.targets:
            await svc.targets[target].activate()
        previous = svc.switch(target, on_switch)
        self.ctx.state.remember(svc.spec, target)
        log.info("%s switched %s -> %s", service, previous, target)
        self.ctx.bus.publish(TargetSwitched(service=service, target=target, previous=previous))

    async def metrics(self) -> str:
        """Prometheus text format: per-service, per-target and per-endpoint counters."""
        return self.ctx.secrets(render_metrics(self.ctx.services.values()))  # labels quote hosts

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncGenerator[str, None]:
        """Log lines of a docker target's containers (the last `tail`, then new ones)."""
        svc = self.ctx.service(service)
        chosen = svc.targets.get(target)
        if chosen is None:
            known = ", ".join(svc.targets)
            raise NotFound(f"service {service!r} has no target {target!r}; known: {known}")
        try:
            async for line in chosen.logs(tail=tail, follow=follow):
                yield line
        except TargetUnavailable as exc:
            raise Conflict(exc.reason) from None
