"""Typed, immutable engine events; `to_json()` gives the wire shape (see protocol.Event)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from devamb.control.protocol import Event, ExchangeSummary, ServiceStats


@dataclass(frozen=True)
class EngineEvent:
    """One event from the engine's bus; `TYPE` is its `type` on the wire, `time` when it
    happened."""

    TYPE: ClassVar[str] = ""
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> Event:
        data: dict[str, Any] = {"type": self.TYPE, **asdict(self)}
        return data  # type: ignore[return-value]


@dataclass(frozen=True)
class ExchangeCompleted(EngineEvent):
    """An exchange completed (or failed): its summary, redacted."""

    TYPE = "exchange"
    exchange: ExchangeSummary  # redacted
    # the Exchange, for filters; "local": never on the wire (docs/reference/events.md omits it)
    record: Any = field(default=None, compare=False, repr=False, metadata={"local": True})

    def to_json(self) -> Event:
        return {"type": self.TYPE, "time": self.time, "exchange": self.exchange}  # type: ignore[typeddict-unknown-key]


@dataclass(frozen=True)
class TargetSwitched(EngineEvent):
    """A service was re-pointed from `previous` to `target`."""

    TYPE = "switched"
    service: str
    target: str
    previous: str


@dataclass(frozen=True)
class StatsTick(EngineEvent):
    """Each service's counters, every half second."""

    TYPE = "stats"
    services: dict[str, ServiceStats]


@dataclass(frozen=True)
class Notice(EngineEvent):
    """Something to tell the user: `level` is info, warning or error."""

    TYPE = "notice"
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class EngineState(EngineEvent):
    """The engine's state changed: `state` is running or stopping."""

    TYPE = "engine"
    state: str  # "running" | "stopping"


@dataclass(frozen=True)
class EventsLost(EngineEvent):
    """This subscriber read too slowly and missed `count` events."""

    TYPE = "lost"
    count: int


@dataclass(frozen=True)
class FaultsChanged(EngineEvent):
    """A service's faults changed: `faults` is its fault list after the change."""

    TYPE = "faults"
    service: str
    faults: list[dict[str, Any]]


@dataclass(frozen=True)
class ConfigReloaded(EngineEvent):
    """A profile edit was applied: the services added, removed and changed."""

    TYPE = "reloaded"
    added: list[str]
    removed: list[str]
    changed: list[str]


@dataclass(frozen=True)
class ConfigRejected(EngineEvent):
    """A profile edit was refused: the previous configuration keeps serving; `errors` are
    FILE:LINE:COL: message."""

    TYPE = "rejected"
    errors: list[str]  # FILE:LINE:COL: message, one a line
