"""AsyncClient: the documented asyncio client of a running engine.

It is made of the same route table as the CLI and the TUI (through
`devamb.control.client.ControlClient`, reachable as `.control`), and adds what test suites and
scripts need on top: fault builders, waiting for an exchange, running a scenario to its end,
recording as a context manager. Every refusal is a ControlError subclass with the engine's
message (see `devamb.client.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from devamb.client.errors import WaitTimeout
from devamb.client.faults import FaultLike, as_dict, fault
from devamb.client.locate import socket_for
from devamb.control.client import ControlClient
from devamb.control.protocol import (
    ControlError,
    Event,
    ExchangeSummary,
    NotFound,
    ServiceStatus,
    Status,
)

POLL = 0.1  # seconds between looks at a running scenario
STORE_POLL = 0.5  # seconds between looks at the store while waiting for an exchange


class AsyncClient:
    """A connection to one engine (opened on first use; `close()` or `async with` ends it).

        async with AsyncClient.connect("path/to/project") as engine:
            await engine.switch("payments", "mock")
            await engine.faults.add("payments", Abort(status=503, times=1))
    """

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout  # seconds a call waits for the engine's answer
        self.control = ControlClient(self.socket_path, timeout=timeout)
        self.faults = AsyncFaults(self.control)
        self.scenario = AsyncScenarios(self.control)

    @classmethod
    def connect(
        cls, where: str | os.PathLike[str] | None = None, timeout: float = 10.0
    ) -> AsyncClient:
        """The client of the engine for a project folder, a profile file or a socket path
        (default: the current folder). Nothing is sent until the first call."""
        return cls(socket_for(where), timeout)

    async def close(self) -> None:
        await self.control.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- services and targets ------------------------------------------------------------------

    async def status(self) -> Status:
        """Services, listeners (the bound ports), targets, faults, counters."""
        return await self.control.status()

    async def service(self, name: str) -> ServiceStatus:
        """One service's status; NotFound naming the known ones."""
        services = (await self.status())["services"]
        for service in services:
            if service["name"] == name:
                return service
        known = ", ".join(s["name"] for s in services)
        raise NotFound(f"unknown service {name!r}; known: {known}")

    async def address(self, service: str) -> tuple[str, int]:
        """Where the service's listener answers (host, port): the port it really bound."""
        host, _, port = (await self.service(service))["listen"].rpartition(":")
        return host.strip("[]"), int(port)

    async def url(self, service: str, scheme: str = "http") -> str:
        """The service's listener as a base URL, e.g. http://127.0.0.1:9001."""
        host, port = await self.address(service)
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    async def switch(self, service: str, target: str) -> None:
        """Re-point `service` at `target`; exchanges in flight finish where they started."""
        await self.control.switch(service, target)

    # -- traffic -------------------------------------------------------------------------------

    async def traffic(self, filter: str | None = None, limit: int = 100) -> list[ExchangeSummary]:
        """The last `limit` exchanges matching the filter expression, oldest first."""
        return await self.control.exchanges(limit, filter)

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        """One exchange in full (headers, timings, body previews), redacted."""
        return await self.control.exchange(exchange_id)

    async def slow(self, service: str, limit: int = 10) -> dict[str, Any]:
        """The `limit` slowest statement forms of `service` (SQL and Redis commands with their
        literals made `?`), each with count, errors, p50/p99/max ms: docs/databases.md."""
        return await self.control.slow_statements(service, limit)

    async def clear_traffic(self) -> None:
        """Forget the recorded exchanges."""
        await self.control.clear_exchanges()

    def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        """Every event from now until the engine stops; with a filter, only the exchange
        events that match it."""
        return self.control.events(filter)

    async def wait_for(
        self, filter: str | None = None, timeout: float = 10.0, after: int | None = None
    ) -> ExchangeSummary:
        """The first completed exchange matching `filter` (a filter expression, e.g.
        '~s payments & ~c 503') with an id above `after` (None: any, including those already
        recorded). WaitTimeout if none comes within `timeout` seconds."""
        try:
            return await asyncio.wait_for(self._first(filter, after or 0), timeout)
        except TimeoutError:
            raise WaitTimeout(
                f"no exchange matching {filter or 'anything'!r} within {timeout:g}s"
            ) from None

    async def _first(self, filter: str | None, after: int) -> ExchangeSummary:
        # The engine's filtered event stream tells of a match as it completes; the store is
        # looked at too, now and every STORE_POLL seconds, for one that completed before the
        # stream was subscribed (or that a reader too slow for the stream lost).
        tasks = [asyncio.ensure_future(self._announced(filter, after)),
                 asyncio.ensure_future(self._stored(filter, after))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _announced(self, filter: str | None, after: int) -> ExchangeSummary:
        async with contextlib.aclosing(self.control.events(filter)) as events:  # type: ignore[type-var]
            async for event in events:
                if event["type"] == "exchange":
                    summary: ExchangeSummary = event["exchange"]  # type: ignore[typeddict-item]
                    if summary["id"] > after:
                        return summary
        raise ControlError("the engine stopped before a matching exchange came")

    async def _stored(self, filter: str | None, after: int) -> ExchangeSummary:
        while True:
            found = await self._matching(filter, after)
            if found is not None:
                return found
            await asyncio.sleep(STORE_POLL)

    async def _matching(self, filter: str | None, after: int) -> ExchangeSummary | None:
        for summary in await self.control.exchanges(1000, filter):
            if summary["id"] > after and summary["duration_ms"] is not None:
                return summary
        return None

    # -- recording, replay, exports ------------------------------------------------------------

    def record(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> AsyncRecording:
        """Record the service's exchanges as mock routes while the `async with` block runs
        (into `to`, default mocks/SERVICE.yaml beside the profile); `.files` after it."""
        return AsyncRecording(self.control, service, to, filter)

    async def replay(
        self, exchange_id: int, target: str | None = None, diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a recorded exchange again (to `target`); with `diff`, how the answers differ."""
        return await self.control.replay(exchange_id, target, diff, ignore)

    async def har(self, filter: str | None = None) -> dict[str, Any]:
        """The recorded HTTP exchanges as a HAR 1.2 document."""
        return await self.control.export_har(filter)

    async def curl(self, exchange_id: int) -> str:
        """A recorded HTTP exchange as a curl command line (through devamb's listener)."""
        return await self.control.export_curl(exchange_id)

    async def grpcurl(self, exchange_id: int) -> str:
        """A recorded unary gRPC call as a grpcurl command line."""
        return await self.control.export_grpcurl(exchange_id)

    def logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        """A docker target's container log lines (the last `tail`, then new ones if `follow`)."""
        return self.control.container_logs(service, target, tail, follow)

    async def metrics(self) -> str:
        """Prometheus text."""
        return await self.control.metrics()

    async def shutdown(self, grace: float | None = None, wait: bool = False) -> None:
        """Stop the engine (exchanges in flight get `grace` seconds); `wait`: until it is done."""
        await self.control.shutdown(grace, wait)


class AsyncFaults:
    """`client.faults`: add, list, turn on and off, remove, clear."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    async def add(self, service: str, spec: FaultLike | str, **keys: Any) -> dict[str, Any]:
        """Add a fault (it replaces one of the same name) and return it as the engine has it.
        `spec` is a builder (`Abort(status=503)`), a dict of the profile's keys, or a kind
        with its keys: `add("payments", "abort", status=503, times=1)`."""
        data = fault(spec, **keys) if isinstance(spec, str) else {**as_dict(spec), **keys}
        return await self._control.add_fault(service, data)

    async def list(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """{service: [fault, ...]} with each fault's counters (fired, seen, last_fired)."""
        return await self._control.faults(service)

    async def get(self, service: str, name: str) -> dict[str, Any]:
        """One fault as the engine has it now; NotFound if it is not there."""
        for item in (await self.list(service)).get(service, []):
            if item["name"] == name:
                return item
        raise NotFound(f"service {service!r} has no fault {name!r}")

    async def enable(self, service: str, name: str) -> None:
        await self._control.set_fault(service, name, True)

    async def disable(self, service: str, name: str) -> None:
        await self._control.set_fault(service, name, False)

    async def remove(self, service: str, name: str) -> None:
        await self._control.remove_fault(service, name)

    async def clear(self, service: str | None = None) -> None:
        """Remove every fault of `service` (of all services by default), the profile's too."""
        await self._control.clear_faults(service)


class AsyncScenarios:
    """`client.scenario`: the profile's fault scenarios."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    async def list(self) -> list[dict[str, Any]]:
        """[{name, running, step, steps, loop, rounds, elapsed}]"""
        return await self._control.scenarios()

    async def start(self, name: str) -> None:
        await self._control.start_scenario(name)

    async def stop(self, name: str) -> None:
        await self._control.stop_scenario(name)

    async def run(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Start the scenario and wait until it has run its steps; its final state.
        WaitTimeout (the scenario is stopped) if it runs longer than `timeout` seconds, as a
        looping scenario does."""
        await self.start(name)
        deadline = time.monotonic() + timeout
        while True:
            state = next((s for s in await self.list() if s["name"] == name), None)
            if state is None or not state["running"]:
                return state or {"name": name, "running": False}
            if time.monotonic() >= deadline:
                await self.stop(name)
                raise WaitTimeout(f"scenario {name!r} still running after {timeout:g}s; stopped")
            await asyncio.sleep(POLL)


class AsyncRecording:
    """A recording of one service as an `async with` block; `files` once it ended."""

    def __init__(
        self, control: ControlClient, service: str, to: str | None, filter: str | None
    ) -> None:
        self._control = control
        self.service, self.to, self.filter = service, to, filter
        self.started: dict[str, Any] = {}
        self.files: list[dict[str, Any]] = []

    async def start(self) -> dict[str, Any]:
        self.started = await self._control.start_recording(self.service, self.to, self.filter)
        return self.started

    async def stop(self) -> list[dict[str, Any]]:
        """Stop and write the mock file; what was written."""
        self.files = await self._control.stop_recording(self.service)
        return self.files

    async def __aenter__(self) -> AsyncRecording:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
