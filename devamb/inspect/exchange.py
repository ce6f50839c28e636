"""One exchange: an HTTP request/response or one TCP connection, as recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from time import time as wall_clock

from devamb.control.protocol import ExchangeSummary


@dataclass(slots=True)
class Exchange:
    id: int
    service: str
    target: str
    protocol: str  # "http" | "tcp"
    client: str
    time: float = field(default_factory=wall_clock)
    started: float = field(default_factory=perf_counter)
    method: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    error: str | None = None

    def finish(self, *, status: int | None = None, error: str | None = None) -> None:
        if status is not None:
            self.status = status
        if error is not None and self.error is None:
            self.error = error
        self.duration_ms = (perf_counter() - self.started) * 1000

    def to_json(self) -> ExchangeSummary:
        summary: ExchangeSummary = {
            "id": self.id,
            "time": self.time,
            "service": self.service,
            "target": self.target,
            "protocol": self.protocol,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "error": self.error,
            "client": self.client,
        }
        if self.protocol == "http":
            summary["method"] = self.method or ""
            summary["path"] = self.path or ""
            summary["status"] = self.status
        return summary
