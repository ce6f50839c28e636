"""The validated profile: immutable values the engine builds services from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int  # 0 picks a free port (handy in tests)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")


@dataclass(frozen=True)
class TargetSpec:
    """Base of every target kind's settings; each kind lives in one module of devamb.targets."""

    KIND: ClassVar[str] = ""
    name: str

    @property
    def kind(self) -> str:
        return self.KIND

    def describe(self) -> str:
        """Where it points, for status output; never contains secrets."""
        return self.KIND

    def watched_files(self) -> tuple[Path, ...]:
        """Files the target reads (a mock file, ...): a change to one reloads the profile."""
        return ()


@dataclass(frozen=True)
class InspectSpec:
    """What a service records: body previews, how many exchanges, what to mask."""

    bodies: int = 64 * 1024  # bytes of each body kept as a preview
    keep: int = 5000  # exchanges kept for this service
    redact: tuple[str, ...] = ()  # more header / JSON field names to mask
    redaction: bool = True  # False: show named headers/fields (${VAR} secrets stay masked)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    listen: ListenAddress
    protocol: str  # "http" | "tcp"
    target: str  # active target at start
    targets: Mapping[str, TargetSpec]
    timeout: float  # s: request sent -> response headers, body stall (HTTP) / connect (TCP)
    keep_host: bool = False
    target_header: bool = True  # honour X-Devamb-Target per request
    faults: Mapping[str, Any] = field(default_factory=dict)  # name -> faults.spec.FaultSpec
    header_faults: bool = False  # honour x-devamb-fault-delay / -abort request headers
    inspect: InspectSpec = field(default_factory=InspectSpec)
    connect_timeout: float | None = None  # seconds to establish an upstream connection
    per_try_timeout: float | None = None  # seconds one try may wait for response headers
    retries: Any = None  # policies.retry.RetrySpec
    circuit_breaker: Any = None  # policies.breaker.BreakerSpec
    fingerprint: str = ""  # changes when the service's profile text changes


@dataclass(frozen=True)
class Profile:
    path: Path
    name: str
    services: Mapping[str, ServiceSpec]
    scenarios: Mapping[str, Any] = field(default_factory=dict)  # faults.scenario.ScenarioSpec
    record_budget: int = 64 * 1024 * 1024  # bytes all recorded exchanges may use together
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    warnings: tuple[str, ...] = ()
