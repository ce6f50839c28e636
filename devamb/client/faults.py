"""Typed fault builders: each produces the dict the profile and the control API accept.

    from devamb.client import faults as f
    client.faults.add("payments", f.Abort(status=503, times=1))
    client.faults.add("payments", f.Latency("300ms", jitter="50ms", match=f.Match(path="/charge*")))

Durations are seconds (a number) or text such as "250ms"; sizes are bytes or "64KiB". The
engine checks a fault exactly as it checks the profile, so a bad value comes back as a
ControlError naming the key. One class per kind of `devamb.faults.registry.KINDS` (a test holds
the two together).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

Duration = float | str  # seconds, or "250ms", "2s", "1m"
Size = int | str  # bytes, or "64KiB", "1MiB"


@dataclass(frozen=True)
class Match:
    """Which requests or commands a fault applies to: every given part must match.

    HTTP, HTTP/2 and gRPC services: `path` is a glob (/charge*); `header` maps a name to a
    value glob. PostgreSQL services: `sql` (a substring or glob of the statement, any case).
    Redis services: `command` (GET, or a list) and `key` (a glob)."""

    method: str | list[str] | None = None
    path: str | None = None
    header: dict[str, str] | None = None
    sql: str | None = None
    command: str | None = None
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Common:
    """The keys every kind takes (see docs/faults.md): `name` defaults to the kind (numbered
    if taken); `duration` is the profile's `for:` (turn off after this long)."""

    name: str | None = None
    enabled: bool | None = None
    probability: float | None = None
    direction: str | None = None
    match: Match | None = None
    times: int | None = None
    after: int | None = None
    duration: Duration | None = None


@dataclass(frozen=True)
class FaultBuilder(Common):
    """The base of the builders: `to_dict()` is what `faults.add` sends."""

    KIND: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.KIND}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Match):
                value = value.to_dict()
            data["for" if f.name == "duration" else f.name] = value
        return data


@dataclass(frozen=True)
class Latency(FaultBuilder):
    """Delay the request (`on="request"`, before the upstream) or the first byte of the response."""

    KIND: ClassVar[str] = "latency"
    delay: Duration
    jitter: Duration | None = None
    distribution: str | None = None  # uniform | normal | lognormal
    on: str | None = None  # request | response
    per_message: bool | None = None  # HTTP/2: each message or DATA chunk


@dataclass(frozen=True)
class Abort(FaultBuilder):
    """Answer at once with `status` instead of calling the upstream."""

    KIND: ClassVar[str] = "abort"
    status: int | None = None  # default 503
    body: str | None = None
    headers: dict[str, str] | None = None
    grpc_status: int | str | None = None
    grpc_message: str | None = None


@dataclass(frozen=True)
class Reset(FaultBuilder):
    """Reset the connection (before the upstream, or after `after_bytes` of the response)."""

    KIND: ClassVar[str] = "reset"
    after_bytes: Size | None = None
    code: int | str | None = None  # HTTP/2 error code
    scope: str | None = None  # HTTP/2: stream | connection


@dataclass(frozen=True)
class Timeout(FaultBuilder):
    """Hold the exchange: for `timeout` (then close), or until the fault is removed (0)."""

    KIND: ClassVar[str] = "timeout"
    timeout: Duration | None = None


@dataclass(frozen=True)
class Bandwidth(FaultBuilder):
    """Throttle to `rate` bytes per second."""

    KIND: ClassVar[str] = "bandwidth"
    rate: Size


@dataclass(frozen=True)
class Slicer(FaultBuilder):
    """Send in pieces of `size` bytes, `delay` apart."""

    KIND: ClassVar[str] = "slicer"
    size: Size | None = None
    delay: Duration | None = None


@dataclass(frozen=True)
class LimitData(FaultBuilder):
    """Close the connection after `bytes` bytes."""

    KIND: ClassVar[str] = "limit_data"
    bytes: Size


@dataclass(frozen=True)
class SlowClose(FaultBuilder):
    """Wait `delay` before closing the connection."""

    KIND: ClassVar[str] = "slow_close"
    delay: Duration


@dataclass(frozen=True)
class Malformed(FaultBuilder):
    """Answer with a broken response (`mode`: bad-chunk, garbage, empty, short-body)."""

    KIND: ClassVar[str] = "malformed"
    mode: str | None = None


@dataclass(frozen=True)
class Error(FaultBuilder):
    """Answer a matching statement or command with an error instead of forwarding it: a
    PostgreSQL ErrorResponse with `sqlstate` (and `message`), or a Redis error `reply`."""

    KIND: ClassVar[str] = "error"
    sqlstate: str | None = None  # postgres, e.g. "40001"
    message: str | None = None  # postgres
    reply: str | None = None  # redis, e.g. "-READONLY You can't write against a read only replica."


@dataclass(frozen=True)
class Down(FaultBuilder):
    """The service is down: connections are refused or reset."""

    KIND: ClassVar[str] = "down"


BUILDERS: dict[str, type[FaultBuilder]] = {
    b.KIND: b
    for b in (Latency, Abort, Reset, Timeout, Bandwidth, Slicer, LimitData, SlowClose,
              Malformed, Error, Down)
}


def fault(kind: str, **keys: Any) -> dict[str, Any]:
    """A fault as a dict from its kind and the profile's keys (`duration=` or `for_=` for
    `for:`); what the markers and `faults.add(service, kind, ...)` use."""
    if "for_" in keys:
        keys["for"] = keys.pop("for_")
    if "duration" in keys:
        keys["for"] = keys.pop("duration")
    match = keys.get("match")
    if isinstance(match, Match):
        keys["match"] = match.to_dict()
    return {"kind": kind, **keys}


FaultLike = FaultBuilder | dict[str, Any]


def as_dict(spec: FaultLike) -> dict[str, Any]:
    """A builder's dict, or a dict as it is."""
    return spec.to_dict() if isinstance(spec, FaultBuilder) else dict(spec)
