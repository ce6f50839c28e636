"""A running service: its targets, which one is active, its counters."""

from __future__ import annotations

from collections.abc import Iterable

from devamb.control.protocol import NotFound, ServiceStatus, TargetStatus
from devamb.faults.manager import FaultManager
from devamb.inspect.redaction import Redaction
from devamb.policies.request import RequestPolicy
from devamb.service.spec import ServiceSpec
from devamb.service.stats import ServiceCounters
from devamb.targets.base import Target


class Service:
    def __init__(
        self,
        spec: ServiceSpec,
        targets: dict[str, Target],
        active: str,
        faults: FaultManager,
        policy: RequestPolicy,
        secrets: Iterable[str] = (),
    ) -> None:
        self.spec = spec
        self.targets = targets
        self.active = active
        self.faults = faults
        self.policy = policy
        self.redaction = Redaction.from_names(
            spec.inspect.redact, secrets=secrets, enabled=spec.inspect.redaction
        )
        self.counters = ServiceCounters()
        self.bound: tuple[str, int] | None = None  # the listener's real address once bound

    @property
    def name(self) -> str:
        return self.spec.name

    def target(self, name: str | None = None) -> Target:
        """The named target, or the active one; switching swaps `active` for the next exchange."""
        return self.targets[name or self.active]

    def switch(self, name: str) -> str:
        if name not in self.targets:
            known = ", ".join(self.targets)
            raise NotFound(f"service {self.name!r} has no target {name!r}; known: {known}")
        previous, self.active = self.active, name
        return previous

    @property
    def listen(self) -> str:
        if self.bound is None:
            return str(self.spec.listen)
        host, port = self.bound
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def status(self) -> ServiceStatus:
        return {
            "name": self.name,
            "listen": self.listen,
            "protocol": self.spec.protocol,
            "target": self.active,
            "targets": [self._target_status(t) for t in self.targets.values()],
            "faults": self.faults.list(),
            "stats": self.counters.snapshot(),
            "listening": self.bound is not None,
        }

    def _target_status(self, target: Target) -> TargetStatus:
        status: TargetStatus = {
            "name": target.name,
            "kind": target.spec.kind,
            "address": target.spec.describe(),
            "state": target.state,
            "active": target.name == self.active,
            "details": target.details(),
        }
        breaker = self.policy.breakers.get(target.name)
        if breaker is not None:
            status["breaker"] = breaker.to_json()
        return status
