"""The fault desk: listing, adding, toggling and removing a service's faults at runtime."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from devamb.control.events import FaultsChanged
from devamb.control.protocol import NotFound
from devamb.engine.context import EngineContext
from devamb.faults.spec import parse_fault_json
from devamb.service.core import Service

log = logging.getLogger("devamb.engine")


class FaultDesk:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        services = [self.ctx.service(service)] if service else list(self.ctx.services.values())
        return {s.name: s.faults.list() for s in services}

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        svc = self.ctx.service(service)
        data = dict(fault)
        name = str(data.pop("name", "") or _free_name(svc, str(data.get("kind"))))
        kinds = {t: target.kind for t, target in svc.spec.targets.items()}
        spec = parse_fault_json(name, data, svc.spec.protocol, kinds)
        svc.faults.add(spec)
        log.info("fault %s added to %s: %s", name, service, spec.kind)
        state = svc.faults.get(name)
        assert state is not None  # added just above
        return state.to_json()

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        svc = self.ctx.service(service)
        _known(svc, name)
        svc.faults.set_enabled(name, enabled)

    async def remove_fault(self, service: str, name: str) -> None:
        svc = self.ctx.service(service)
        _known(svc, name)
        svc.faults.remove(name)

    async def clear_faults(self, service: str | None = None) -> None:
        for svc in [self.ctx.service(service)] if service else self.ctx.services.values():
            svc.faults.clear()

    def changed(self, service: str, why: str | None) -> None:
        """A service's faults changed (from here, a scenario, or a fault that ran out): keep
        the profile faults' toggles for the next start, and tell the subscribers."""
        svc = self.ctx.services.get(service)
        if svc is None:  # during start-up
            return
        self.ctx.state.remember_faults(svc.spec, svc.faults.chain.states)
        self.ctx.bus.publish(FaultsChanged(service=service, faults=svc.faults.list()))
        if why:
            self.ctx.notice("info", why)


def _known(service: Service, name: str) -> None:
    if service.faults.get(name) is None:
        known = ", ".join(service.faults.names()) or "none"
        raise NotFound(f"service {service.name!r} has no fault {name!r}; known: {known}")


def _free_name(service: Service, kind: str) -> str:
    """`kind`, or `kind-2`, `kind-3`, ... : the first name no fault of the service has."""
    names: Iterable[str] = service.faults.names()
    taken = set(names)
    name, n = kind, 2
    while name in taken:
        name, n = f"{kind}-{n}", n + 1
    return name
