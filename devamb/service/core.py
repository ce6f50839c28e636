"""A running service: its targets, which one is active, its counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from devamb.control.protocol import ControlError, NotFound, ServiceStatus, TargetStatus
from devamb.faults.manager import FaultManager
from devamb.inspect.redaction import Redaction
from devamb.policies.request import RequestPolicy
from devamb.service.spec import ServiceSpec
from devamb.service.stats import ServiceCounters
from devamb.targets.base import Target
from devamb.wire import TCP_PROTOCOLS, is_wire

ON_SWITCH = ("drain", "close", "keep")


class OpenConnection(Protocol):
    """A relayed TCP connection, as a switch acts on it (service/tcp.py's relay)."""

    draining: bool

    @property
    def target(self) -> str: ...  # the target it was opened to

    def drain(self) -> None: ...  # close at its next safe point

    def reset(self) -> None: ...  # cut both sockets now


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
        self.connections: set[OpenConnection] = set()  # tcp, postgres, redis: open now

    @property
    def name(self) -> str:
        return self.spec.name

    def target(self, name: str | None = None) -> Target:
        """The named target, or the active one; switching swaps `active` for the next exchange."""
        return self.targets[name or self.active]

    def switch(self, name: str, on_switch: str | None = None) -> str:
        """Make `name` the active target; the connections open to the previous one are
        drained, closed or kept (`on_switch`, else the service's `on_switch:`)."""
        if name not in self.targets:
            known = ", ".join(self.targets)
            raise NotFound(f"service {self.name!r} has no target {name!r}; known: {known}")
        mode = on_switch or self.spec.on_switch
        if mode not in ON_SWITCH:
            raise ControlError(f"on_switch must be one of {', '.join(ON_SWITCH)}, not {mode!r}")
        if on_switch is not None and self.spec.protocol not in TCP_PROTOCOLS:
            raise ControlError(f"--{on_switch} applies to tcp, postgres and redis services; "
                               f"{self.name!r} is {self.spec.protocol}")
        if mode == "drain" and not is_wire(self.spec.protocol):
            raise ControlError(f"--drain needs a protocol devamb reads (postgres, redis): a "
                               f"{self.spec.protocol} relay has no safe point; use --close")
        previous, self.active = self.active, name
        if previous != name and mode != "keep":
            for connection in [c for c in self.connections if c.target == previous]:
                if mode == "close":
                    connection.reset()
                else:
                    connection.drain()
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
        if self.spec.protocol in TCP_PROTOCOLS:
            mine = [c for c in self.connections if c.target == target.name]
            status["connections"] = {"open": len(mine),
                                     "draining": sum(1 for c in mine if c.draining)}
        breaker = self.policy.breakers.get(target.name)
        if breaker is not None:
            status["breaker"] = breaker.to_json()
        return status
