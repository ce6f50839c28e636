"""Typed, immutable engine events; `to_json()` gives the wire shape (see protocol.Event)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from devamb.control.protocol import Event, ExchangeSummary, ServiceStats


@dataclass(frozen=True)
class EngineEvent:
    TYPE: ClassVar[str] = ""
    time: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> Event:
        data: dict[str, Any] = {"type": self.TYPE, **asdict(self)}
        return data  # type: ignore[return-value]


@dataclass(frozen=True)
class ExchangeCompleted(EngineEvent):
    TYPE = "exchange"
    exchange: ExchangeSummary  # redacted
    record: Any = field(default=None, compare=False, repr=False)  # the Exchange, for filters

    def to_json(self) -> Event:
        return {"type": self.TYPE, "time": self.time, "exchange": self.exchange}  # type: ignore[typeddict-unknown-key]


@dataclass(frozen=True)
class TargetSwitched(EngineEvent):
    TYPE = "switched"
    service: str
    target: str
    previous: str


@dataclass(frozen=True)
class StatsTick(EngineEvent):
    TYPE = "stats"
    services: dict[str, ServiceStats]


@dataclass(frozen=True)
class Notice(EngineEvent):
    TYPE = "notice"
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class EngineState(EngineEvent):
    TYPE = "engine"
    state: str  # "running" | "stopping"


@dataclass(frozen=True)
class EventsLost(EngineEvent):
    TYPE = "lost"
    count: int


@dataclass(frozen=True)
class FaultsChanged(EngineEvent):
    TYPE = "faults"
    service: str
    faults: list[dict[str, Any]]


@dataclass(frozen=True)
class ConfigReloaded(EngineEvent):
    TYPE = "reloaded"
    added: list[str]
    removed: list[str]
    changed: list[str]


@dataclass(frozen=True)
class ConfigRejected(EngineEvent):
    TYPE = "rejected"
    errors: list[str]  # FILE:LINE:COL: message, one a line
