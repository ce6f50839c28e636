"""A service's validated settings, and what its targets are given of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devamb.faults.spec import FaultSpec
from devamb.policies.breaker import BreakerSpec
from devamb.policies.retry import RetrySpec
from devamb.profile.schema import InspectSpec, ListenAddress, TargetSpec
from devamb.service.listener_tls import ListenerTls
from devamb.targets.base import TargetContext
from devamb.wire import transport

if TYPE_CHECKING:
    from devamb.grpc.schema import Schema  # made by the profiles with schemas (issue 22: RSS)
    from devamb.tunnel.registry import Tunnels


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    listen: ListenAddress
    protocol: str  # "http" | "tcp" | "http2" | "grpc" | "postgres" | "redis"
    target: str  # active target at start
    targets: Mapping[str, TargetSpec]
    timeout: float  # s: request sent -> response headers, body stall (HTTP) / connect (TCP)
    keep_host: bool = False
    target_header: bool = True  # honour X-Devamb-Target per request
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)  # by name, as in the profile
    header_faults: bool = False  # honour x-devamb-fault-delay / -abort request headers
    inspect: InspectSpec = field(default_factory=InspectSpec)
    connect_timeout: float | None = None  # seconds to establish an upstream connection
    per_try_timeout: float | None = None  # seconds one try may wait for response headers
    retries: RetrySpec | None = None
    circuit_breaker: BreakerSpec | None = None
    tls: ListenerTls | None = None  # the listener terminates TLS (`tls: {cert, key}`)
    fingerprint: str = ""  # changes when the service's profile text changes
    schema: Schema | None = None  # gRPC messages' types (`proto:` / `descriptor_set:`)
    schema_files: tuple[Path, ...] = ()  # the files it was read from (a change reloads)
    on_switch: str = "keep"  # tcp-like: what a switch does to open connections (drain|close|keep)
    redact_params: bool = False  # postgres: bound parameter values are not recorded

    def target_context(
        self, notify: Callable[[str, str], None], replay_token: str | None,
        tunnels: Tunnels | None = None,
    ) -> TargetContext:
        """What this service's targets are built with (`build_targets` adds the siblings)."""
        return TargetContext(
            service=self.name,
            protocol=transport(self.protocol),  # postgres, redis: tcp to the targets
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            keep_host=self.keep_host,
            target_header=self.target_header,
            notify=notify,
            replay_token=replay_token,
            tunnels=tunnels,
        )
