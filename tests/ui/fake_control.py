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
from devamb.inspect.slow import samples_of, slowest

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
                    target("local", "url", "http://127.0.0.1:8001", "refused"),
                    target("staging", "url", "https://payments.staging.example.com", "reachable",
                           active=True),
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
                    target("local", "url", "http://127.0.0.1:9200", "reachable", active=True),
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
                "targets": [
                    target("local", "url", "tcp://127.0.0.1:6379", "reachable", active=True)
                ],
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
        self.faults_by_service: dict[str, list[dict[str, Any]]] = {
            s["name"]: copy.deepcopy(s["faults"]) for s in self._status["services"]
        }
        self.scenario_list: list[dict[str, Any]] = list(self._status.get("scenarios", []))
        self.calls: list[tuple[Any, ...]] = []  # feature calls, in order, for assertions
        self.replays: dict[int, dict[str, Any]] = {}  # exchange id -> replay(...) answer
        self.logs: list[str] = ["starting payments", "listening on :8000"]

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

    async def switch(self, service: str, target: str, on_switch: str | None = None) -> None:
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

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        if filter:
            matches = fake_filter(filter)
            return copy.deepcopy([e for e in self.history if matches(e)][-limit:])
        return copy.deepcopy(self.history[-limit:])

    async def slow_statements(self, service: str, limit: int = 10) -> dict[str, Any]:
        if service not in {s["name"] for s in self._status["services"]}:
            raise ControlError(f"no service {service!r}")
        mine = [e for e in self.history if e["service"] == service]
        return slowest(service, samples_of(mine), limit)

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        """The full record, shaped like the engine's `Redaction.detail()`."""
        if exchange_id not in self.details:
            raise ControlError(f"exchange {exchange_id} is no longer recorded")
        return copy.deepcopy(self.details[exchange_id])

    async def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        """What `push()` queued (the filter is not applied)."""
        self.subscribed.set()
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        self.shutdown_called = True
        self.dead = True
        self._queue.put_nowait(None)
        return None

    async def close(self) -> None:
        """Nothing to release."""

    async def metrics(self) -> str:
        return "# no metrics in the fake\n"

    # -- the features' calls (faults, scenarios, inspection, recording, logs) -------------------

    def _fault_list(self, service: str) -> list[dict[str, Any]]:
        if service not in self.faults_by_service:
            raise ControlError(f"no service {service!r}")
        return self.faults_by_service[service]

    def _faults_changed(self, service: str) -> None:
        faults = copy.deepcopy(self.faults_by_service[service])
        for entry in self._status["services"]:
            if entry["name"] == service:
                entry["faults"] = copy.deepcopy(faults)
        self.push({"type": "faults", "time": T0, "service": service, "faults": faults})

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        names = [service] if service else list(self.faults_by_service)
        return {name: copy.deepcopy(self._fault_list(name)) for name in names}

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        faults = self._fault_list(service)
        data = dict(fault)
        kind = data.pop("kind", None)
        if kind not in FAKE_KINDS:
            raise ControlError(f"kind: {kind!r} is not one of {', '.join(FAKE_KINDS)}")
        required = FAKE_KINDS[kind]
        if required and required not in data:
            raise ControlError(f"missing required key {required!r}")
        probability = data.pop("probability", 1.0)
        if not isinstance(probability, int | float) or not 0 <= probability <= 1:
            raise ControlError(f"probability: {probability} is out of range 0..1")
        name = str(data.pop("name", "") or kind)
        data.pop("match", None)
        record = {"name": name, "kind": kind, "enabled": True, "probability": probability,
                  "direction": "downstream", "params": data, "fired": 0, "seen": 0,
                  "last_fired": None}  # fmt: skip
        faults.append(record)
        self.calls.append(("add_fault", service, fault))
        self._faults_changed(service)
        return copy.deepcopy(record)

    def _fault(self, service: str, name: str) -> dict[str, Any]:
        for fault in self._fault_list(service):
            if fault["name"] == name:
                return fault
        raise ControlError(f"service {service!r} has no fault {name!r}")

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        self._fault(service, name)["enabled"] = enabled
        self.calls.append(("set_fault", service, name, enabled))
        self._faults_changed(service)

    async def remove_fault(self, service: str, name: str) -> None:
        self._fault_list(service).remove(self._fault(service, name))
        self.calls.append(("remove_fault", service, name))
        self._faults_changed(service)

    async def clear_faults(self, service: str | None = None) -> None:
        for name in [service] if service else list(self.faults_by_service):
            self._fault_list(name).clear()
            self._faults_changed(name)
        self.calls.append(("clear_faults", service))

    async def scenarios(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.scenario_list)

    async def start_scenario(self, name: str) -> None:
        for scenario in self.scenario_list:
            if scenario["name"] == name:
                scenario.update(running=True, step=1, elapsed=0.0)
        self.calls.append(("start_scenario", name))

    async def stop_scenario(self, name: str) -> None:
        for scenario in self.scenario_list:
            if scenario["name"] == name:
                scenario.update(running=False, elapsed=None)
        self.calls.append(("stop_scenario", name))

    async def clear_exchanges(self) -> None:
        self.history.clear()
        self.calls.append(("clear_exchanges",))

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        chosen = await self.exchanges(len(self.history), filter)
        entries = [{"request": {"method": e.get("method"), "url": e.get("path")}} for e in chosen]
        return {"log": {"version": "1.2", "entries": entries}}

    async def export_curl(self, exchange_id: int) -> str:
        for e in self.history:
            if e["id"] == exchange_id:
                return f"curl -X {e.get('method')} 'http://127.0.0.1:9001{e.get('path')}'"
        raise ControlError(f"no exchange {exchange_id}")

    async def export_grpcurl(self, exchange_id: int) -> str:
        for e in self.history:
            if e["id"] == exchange_id:
                return f"grpcurl -plaintext -d '{{}}' 127.0.0.1:9001 {e.get('path', '')[1:]}"
        raise ControlError(f"no exchange {exchange_id}")

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("replay", exchange_id, target, diff))
        if exchange_id in self.replays:
            return copy.deepcopy(self.replays[exchange_id])
        original = next(e for e in self.history if e["id"] == exchange_id)
        copied = dict(original, id=1000 + exchange_id, replay_of=exchange_id)
        if target:
            copied["target"] = target
        return {"exchange": copied, **({"diff": []} if diff else {})}

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        session = {"service": service, "to": to or f"/home/dev/shop/mocks/{service}.yaml",
                   "filter": filter, "recorded": 0, "skipped": {}}  # fmt: skip
        self._status.setdefault("recordings", []).append(session)
        self.calls.append(("start_recording", service))
        return dict(session)

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        recordings = self._status.setdefault("recordings", [])
        stopped = [r for r in recordings if service in (None, r["service"])]
        if not stopped:
            raise ControlError(f"{service!r} is not being recorded")
        for r in stopped:
            recordings.remove(r)
        self.calls.append(("stop_recording", service))
        return [dict(r, file=r["to"], recorded=3) for r in stopped]

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        for line in self.logs[-tail:]:
            yield line
        if follow:
            await asyncio.Event().wait()  # until cancelled, like a followed log


FAKE_KINDS: dict[str, str | None] = {
    "latency": "delay", "abort": None, "reset": None, "timeout": None, "bandwidth": "rate",
    "slicer": None, "limit_data": "bytes", "slow_close": "delay", "malformed": None, "down": None,
}  # fmt: skip


def fake_filter(text: str):
    """A tiny subset of the engine's language: `~s NAME`, `~c 5xx|CODE`, `~m METHOD`, `&`."""
    tests = []
    column = 1
    for part in text.split("&"):
        words = part.split()
        if len(words) != 2 or words[0] not in ("~s", "~c", "~m"):
            caret = " " * (column + len(part) - len(part.lstrip()) - 1) + "^"
            problem = "bad filter: expected ~s, ~c or ~m and a value"
            raise ControlError(f"{problem}\n  {text}\n  {caret}")
        op, value = words
        if op == "~s":
            tests.append(lambda e, v=value: e["service"] == v)
        elif op == "~m":
            tests.append(lambda e, v=value: e.get("method") == v.upper())
        elif value.endswith("xx"):
            tests.append(lambda e, v=value: str(e.get("status") or 0)[0] == v[0])
        else:
            tests.append(lambda e, v=value: str(e.get("status")) == v)
        column += len(part) + 1
    return lambda e: all(test(e) for test in tests)


def feature_status() -> Status:
    """demo_status plus what the feature screens show: faults, scenarios, a pool, a docker and
    a mock target, an open breaker."""
    status = demo_status()
    payments, search, cache = status["services"]
    payments["faults"] = [
        {"name": "slow", "kind": "latency", "enabled": True, "probability": 0.5,
         "direction": "downstream", "params": {"delay": 0.3, "jitter": 0.05,
         "distribution": "uniform", "on": "request"}, "match": "POST /charges*",
         "fired": 12, "seen": 25, "last_fired": T0},
        {"name": "flaky", "kind": "abort", "enabled": False, "probability": 0.1,
         "direction": "downstream", "params": {"status": 503, "body": "", "headers": {}},
         "times": 3, "fired": 0, "seen": 0, "last_fired": None},
    ]  # fmt: skip
    payments["targets"].append(
        {"name": "pool", "kind": "endpoints", "address": "2 endpoints (round_robin)",
         "state": "degraded", "active": False,
         "breaker": {"state": "open", "in_flight": 0, "rejected": 17, "recent_failures": 5},
         "details": {"balance": "round_robin", "routable": 1, "reason": None, "endpoints": [
             {"endpoint": "http://10.0.0.5:8001", "address": "10.0.0.5:8001", "health": "ready",
              "health_reason": None, "ejected": False, "ejected_for_s": None, "ejections": 0,
              "in_flight": 2, "requests": 812, "failures": 3, "share": 0.8},
             {"endpoint": "http://10.0.0.6:8001", "address": "10.0.0.6:8001",
              "health": "unavailable", "health_reason": "connection refused", "ejected": True,
              "ejected_for_s": 21.5, "ejections": 2, "in_flight": 0, "requests": 203,
              "failures": 9, "share": 0.2},
         ]}}
    )
    payments["targets"].append(
        {"name": "box", "kind": "docker", "address": "container payments-dev:8000",
         "state": "ready", "active": False,
         "details": {"docker_host": "unix:///var/run/docker.sock", "match": "payments-dev",
                     "port": 8000, "reason": None, "endpoints": ["127.0.0.1:32768"],
                     "containers": [{"name": "payments-dev", "id": "3f2a9c1b7d4e",
                                     "state": "running", "address": "127.0.0.1:32768",
                                     "note": None}]}}
    )
    search["targets"].append(
        {"name": "mock", "kind": "mock", "address": "mocks/search.yaml (2 routes)",
         "state": "ready", "active": False,
         "details": {"file": "mocks/search.yaml", "fallback": "proxy local", "matched": 9,
                     "routes": [{"index": 0, "name": "GET /products/{id}", "hits": 7},
                                {"index": 1, "name": "GET /products", "hits": 2, "left": 1}],
                     "unmatched_count": 1,
                     "unmatched": [{"time": T0 + 3, "method": "DELETE", "path": "/products/9",
                                    "closest": "GET /products/{id} (method)"}]}}
    )
    cache["targets"].append(
        {"name": "ring", "kind": "shards", "address": "3 shards (redis)", "state": "ready",
         "active": False,
         "details": {"key": "redis", "shards": [
             {"name": f"127.0.0.1:700{n}", "address": f"127.0.0.1:700{n}", "state": "ready",
              "requests": r, "errors": 0, "share": round(r / 300, 4), "returns_in_s": None,
              "last_error": None} for n, r in ((1, 90), (2, 110), (3, 100))]}}
    )
    status["scenarios"] = [
        {"name": "outage", "running": True, "step": 2, "steps": 4, "loop": False, "rounds": 0,
         "elapsed": 21.4},
        {"name": "brownout", "running": False, "step": 0, "steps": 3, "loop": True, "rounds": 0,
         "elapsed": None},
    ]  # fmt: skip
    status["recordings"] = []
    return status
