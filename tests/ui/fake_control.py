"""FakeControl: a small in-memory EngineControl with fixed data, for deterministic UI tests."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from devamb.control.protocol import (
    ControlError,
    EngineUnavailable,
    Event,
    ExchangeSummary,
    ServiceStats,
    Status,
    TargetStatus,
)

T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC; tests run with TZ=UTC


def stats(rate: float = 0.0, p50: float | None = None, p99: float | None = None, errors=0.0):
    value: ServiceStats = {
        "requests": int(rate * 60),
        "errors": int(rate * 60 * errors),
        "active": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "rate": rate,
        "error_rate": errors,
        "p50_ms": p50,
        "p90_ms": p99,
        "p99_ms": p99,
    }
    return value


def target(name: str, kind: str, address: str, state: str = "ready", active: bool = False):
    value: TargetStatus = {
        "name": name,
        "kind": kind,
        "address": address,
        "state": state,
        "active": active,
    }
    return value


def demo_status() -> Status:
    return {
        "profile": "/home/dev/shop/devamb.yaml",
        "name": "shop",
        "engine": {"pid": 4242, "version": "0.1.0", "started": T0},
        "errors": [],
        "services": [
            {
                "name": "payments",
                "listen": "127.0.0.1:9001",
                "protocol": "http",
                "target": "staging",
                "targets": [
                    target("local", "url", "http://127.0.0.1:8001", "unavailable"),
                    target("staging", "url", "https://payments.staging.example.com", active=True),
                    target("debug", "echo", "built-in echo"),
                ],
                "faults": [{"name": "slow", "kind": "latency", "enabled": True}],
                "stats": stats(42.5, 12.0, 180.0, 0.02),
                "listening": True,
            },
            {
                "name": "search",
                "listen": "127.0.0.1:9002",
                "protocol": "http",
                "target": "local",
                "targets": [
                    target("local", "url", "http://127.0.0.1:9200", active=True),
                    target("debug", "echo", "built-in echo"),
                ],
                "faults": [],
                "stats": stats(7.0, 3.2, 9.8),
                "listening": True,
            },
            {
                "name": "cache",
                "listen": "127.0.0.1:6380",
                "protocol": "tcp",
                "target": "local",
                "targets": [target("local", "url", "tcp://127.0.0.1:6379", active=True)],
                "faults": [],
                "stats": stats(),
                "listening": True,
            },
        ],
    }


def exchange(
    number: int,
    service: str = "payments",
    target: str = "staging",
    method: str = "GET",
    path: str = "/charges",
    status: int | None = 200,
    duration_ms: float | None = 12.5,
    error: str | None = None,
    **extra: Any,
) -> ExchangeSummary:
    value: dict[str, Any] = {
        "id": number,
        "time": T0 + number * 0.25,
        "service": service,
        "target": target,
        "protocol": "http",
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "bytes_in": 120,
        "bytes_out": 2048,
        "error": error,
        "client": "127.0.0.1:53012",
    }
    value.update(extra)
    return value  # type: ignore[return-value]


def demo_exchanges(count: int = 30) -> list[ExchangeSummary]:
    routes = [
        ("payments", "staging", "POST", "/charges", 201, 84.0),
        ("search", "local", "GET", "/products?q=shoes&page=2", 200, 6.4),
        ("payments", "staging", "GET", "/charges/ch_1042", 200, 31.0),
        ("search", "local", "GET", "/products/991", 404, 2.1),
        ("payments", "staging", "POST", "/refunds", 503, 1250.0),
    ]
    out = []
    for number in range(1, count + 1):
        service, target_name, method, path, status, duration = routes[number % len(routes)]
        out.append(exchange(number, service, target_name, method, path, status, duration))
    return out


def demo_stats_events(samples: int = 40) -> list[Event]:
    events = []
    for index in range(samples):
        wave = (index % 10) / 10
        services = {
            "payments": stats(30 + 25 * wave, 10 + index % 4, 120 + 90 * wave, 0.02),
            "search": stats(5 + (index % 7), 3.0, 8 + (index % 5)),
            "cache": stats(0.0),
        }
        events.append({"type": "stats", "time": T0 + index * 0.5, "services": services})
    return events


class FakeControl:
    """Implements EngineControl over fixed data. Events come from `push()`; `die()` kills it."""

    def __init__(self, status: Status | None = None, history: list[ExchangeSummary] | None = None):
        self._status = status or demo_status()
        self.history = list(history or [])
        self._queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self.details: dict[int, dict[str, Any]] = {}  # full records for exchange(id)
        self.switches: list[tuple[str, str]] = []
        self.shutdown_called = False
        self.dead = False
        self.subscribed = asyncio.Event()

    # -- scripting -----------------------------------------------------------------------------

    def push(self, *events: Event) -> None:
        for event in events:
            self._queue.put_nowait(event)

    def die(self, reason: str = "engine process exited (code -9)") -> None:
        self.dead = True
        self._queue.put_nowait(EngineUnavailable(reason))

    @property
    def drained(self) -> bool:
        return self._queue.empty()

    def active_target(self, service: str) -> str:
        return next(s["target"] for s in self._status["services"] if s["name"] == service)

    # -- EngineControl -------------------------------------------------------------------------

    async def status(self) -> Status:
        if self.dead:
            raise EngineUnavailable("no engine is running")
        return copy.deepcopy(self._status)

    async def switch(self, service: str, target: str) -> None:
        if self.dead:
            raise EngineUnavailable("no engine is running")
        for entry in self._status["services"]:
            if entry["name"] == service:
                names = [t["name"] for t in entry["targets"]]
                if target not in names:
                    known = ", ".join(names)
                    raise ControlError(f"{service}: no target {target!r}; known: {known}")
                previous = entry["target"]
                entry["target"] = target
                for t in entry["targets"]:
                    t["active"] = t["name"] == target
                self.switches.append((service, target))
                event = {"type": "switched", "time": T0, "service": service, "target": target}
                self.push({**event, "previous": previous})
                return
        raise ControlError(f"no service {service!r}")

    async def exchanges(self, limit: int = 100) -> list[ExchangeSummary]:
        return copy.deepcopy(self.history[-limit:])

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        """The full record, shaped like the engine's `Redaction.detail()`."""
        if exchange_id not in self.details:
            raise ControlError(f"exchange {exchange_id} is no longer recorded")
        return copy.deepcopy(self.details[exchange_id])

    async def events(self) -> AsyncIterator[Event]:
        self.subscribed.set()
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def shutdown(self) -> None:
        self.shutdown_called = True
        self.dead = True
        self._queue.put_nowait(None)
