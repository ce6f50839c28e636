"""EngineControl: the one interface through which the TUI, the CLI and scripts drive an engine.

Two implementations exist: `devamb.control.client.ControlClient` talks to an engine process over
its unix socket, and `devamb.engine.core.Engine` itself (in-process, used by tests). Everything that
crosses this interface is plain JSON-shaped data, described by the TypedDicts below, so that both
implementations hand the UI exactly the same shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NotRequired, Protocol, TypedDict


class TargetStatus(TypedDict):
    name: str
    kind: str  # "url" | "echo" | later: mock, pool, split, shards, docker
    address: str  # what it points at, e.g. "http://127.0.0.1:8001" or "built-in echo"
    state: str  # "ready" | "unavailable" | ...
    active: bool
    details: dict[str, Any]  # kind-specific: container name/id/state, resolved endpoints, ...
    breaker: NotRequired[dict[str, Any]]  # {state, in_flight, rejected, recent_failures}
    connections: NotRequired[dict[str, int]]  # tcp-like services: {open, draining} to it


class ServiceStats(TypedDict):
    requests: int  # HTTP exchanges or TCP connections since start
    errors: int
    active: int  # in flight now
    bytes_in: int  # client -> upstream
    bytes_out: int  # upstream -> client
    rate: float  # exchanges per second over the last few seconds
    error_rate: float  # errors / exchanges over the same window (0..1)
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


class ServiceStatus(TypedDict):
    name: str
    listen: str  # "127.0.0.1:9001"
    protocol: str  # "http" | "tcp"
    target: str  # the active target
    targets: list[TargetStatus]
    faults: list[dict[str, Any]]
    stats: ServiceStats
    listening: bool


class EngineInfo(TypedDict):
    pid: int
    version: str
    started: float  # unix time


class Status(TypedDict):
    profile: str
    name: str
    engine: EngineInfo
    services: list[ServiceStatus]
    scenarios: list[dict[str, Any]]  # {name, running, step, steps, loop, rounds, elapsed}
    recordings: list[dict[str, Any]]  # mock recordings in progress
    errors: list[str]
    #: SSH bastions: {name, address, jump, state (idle|connecting|up|down), reason, rtt_ms,
    #: channels, channels_total, bytes_in, bytes_out, connects, host_key, last_error}
    bastions: NotRequired[list[dict[str, Any]]]


class ExchangeSummary(TypedDict):
    id: int
    time: float  # unix time the exchange started
    service: str
    target: str
    protocol: str  # "http" | "tcp" | "http2" | "grpc"
    method: NotRequired[str]
    path: NotRequired[str]
    status: NotRequired[int | None]
    duration_ms: float | None  # None while in flight
    bytes_in: int
    bytes_out: int
    error: str | None
    client: str
    faults: NotRequired[list[str]]  # names of faults that fired
    replay_of: NotRequired[int]  # the exchange this one replayed
    notes: NotRequired[dict[str, Any]]  # what the target said, e.g. {"mock": {"matched": None}}


class Event(TypedDict):
    """One event from the engine's bus. `type` says which; the other keys depend on it.

    Types: "exchange" (key "exchange": ExchangeSummary, when it completes), "switched" (service,
    target, previous), "faults" (service, faults: the service's fault list after a change),
    "stats" (services: {name: ServiceStats}, every half second), "notice"
    (level, message), "engine" (state: "running" | "stopping"), "lost" (count: events this
    subscriber missed because it read too slowly).
    """

    type: str
    time: float


class ControlError(Exception):
    """A request the engine refused; `code` is the CLI exit code (1 bad input, 3 no engine),
    `status` the control API's HTTP status: 400 (bad arguments) unless a subclass says else."""

    status = 400

    def __init__(self, message: str, code: int = 1, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status


class NotFound(ControlError):
    """A name the engine does not know: service, target, exchange, fault, scenario (404)."""

    status = 404


class Conflict(ControlError):
    """The thing named exists, but its state now refuses the request, e.g. a recording that
    is already running, a container that is not running (409)."""

    status = 409


def refusal(status: int, message: str) -> ControlError:
    """The ControlError an answer with this HTTP status stands for (the client's side)."""
    kind = {NotFound.status: NotFound, Conflict.status: Conflict}.get(status)
    return kind(message) if kind is not None else ControlError(message, status=status)


class EngineUnavailable(ControlError):
    """No engine answers (never started, stopped, or died)."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, code=3)


class EngineControl(Protocol):
    async def status(self) -> Status:
        """The engine's state: each service with its listener, targets (and theirs), faults."""

    async def switch(self, service: str, target: str, on_switch: str | None = None) -> None:
        """Re-point `service` at `target`; raises ControlError naming what is unknown.
        `on_switch` (drain | close | keep) overrides the service's for its open connections."""

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        """The most recent exchanges (matching a filter expression), oldest first."""

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        """One exchange in full, redacted: headers, timings, bodies (see Redaction.detail)."""

    async def clear_exchanges(self) -> None:
        """Forget every recorded exchange."""

    async def slow_statements(self, service: str, limit: int = 10) -> dict[str, Any]:
        """The `limit` slowest statement forms of `service` (SQL, Redis commands, HTTP routes
        normalised: literals made `?`) among its recorded exchanges, with counts and p50/p99."""

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        """The recorded exchanges (matching a filter expression) as a HAR 1.2 log, redacted."""

    async def export_curl(self, exchange_id: int) -> str:
        """A recorded HTTP exchange as a curl command line (through devamb's listener)."""

    async def export_grpcurl(self, exchange_id: int) -> str:
        """A recorded gRPC unary call as a grpcurl command line (through devamb's listener)."""

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a recorded exchange again, to its target or to `target`. Answers {"exchange":
        summary of the replay, "diff": [{path, left, right, change}] if asked}."""

    def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        """Every event from now on, until the engine stops (then the iterator ends); with a
        filter expression, only the exchange events that match it."""

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        """Stop the engine: stop accepting, give exchanges in flight up to `grace` seconds (the
        engine's default: its longest service timeout), then cut them. Returns at once with
        {grace, in_flight: {service: n}}; with `wait`, after the drain, with `finished` and
        `cut: {service: n}` (what was still in flight when the grace ran out)."""

    async def close(self) -> None:
        """Release the connection to the engine (the engine keeps running)."""

    # Faults: each fault is {name, kind, enabled, probability, direction, params, match?, times?,
    # after?, for?, fired, seen, last_fired}; `add_fault` takes the profile's keys for one fault.
    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Each service's faults (or one service's), with their counters."""

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        """Add a fault to a service (the profile's keys; `name` optional); the fault added."""

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        """Turn a fault of the service on or off."""

    async def remove_fault(self, service: str, name: str) -> None:
        """Remove a fault from the service."""

    async def clear_faults(self, service: str | None = None) -> None:
        """Remove the faults of every service, or of one."""

    async def scenarios(self) -> list[dict[str, Any]]:
        """The profile's scenarios: {name, running, step, steps, loop, rounds, elapsed} each."""

    async def metrics(self) -> str:
        """Prometheus text format."""

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        """Record the service's exchanges as mock routes into `to` (default mocks/SERVICE.yaml)."""

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        """Stop (all) recordings and write their mock files; what was written."""

    def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        """A docker target's container log lines; ControlError for other kinds."""

    async def start_scenario(self, name: str) -> None:
        """Start a scenario from its first step."""

    async def stop_scenario(self, name: str) -> None:
        """Stop a scenario: the faults its steps added go, the profile's are put back."""
