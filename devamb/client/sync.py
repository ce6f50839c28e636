"""Client: the blocking flavour of AsyncClient, for test suites and scripts.

Its calls run on a private event loop in a daemon thread, so it works the same from plain code,
from a thread, or from inside another event loop (a sync call there blocks only its caller).
Each method is the AsyncClient method of the same name; see there for what it does.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from devamb.client.aio import AsyncClient, AsyncFaults, AsyncRecording, AsyncScenarios
from devamb.client.faults import FaultLike
from devamb.client.locate import socket_for
from devamb.control.protocol import Event, ExchangeSummary, ServiceStatus, Status

T = TypeVar("T")


async def _awaited(step: Awaitable[T]) -> T:
    return await step


class _Loop:
    """An event loop running in its own daemon thread; `run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="devamb-client", daemon=True
        )
        self._thread.start()

    def run(self, step: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_awaited(step), self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Client:
    """A blocking connection to one engine; `close()` or `with` ends it.

        with Client.connect("path/to/project") as engine:
            engine.switch("payments", "mock")
            engine.faults.add("payments", Abort(status=503, times=1))
            engine.wait_for("~s payments & ~c 503")
    """

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self._loop = _Loop()
        self.aio = AsyncClient(socket_path, timeout)
        self.faults = Faults(self.aio.faults, self._loop)
        self.scenario = Scenarios(self.aio.scenario, self._loop)

    @classmethod
    def connect(cls, where: str | os.PathLike[str] | None = None, timeout: float = 10.0) -> Client:
        """The client of the engine for a project folder, a profile file or a socket path
        (default: the current folder). Nothing is sent until the first call."""
        return cls(socket_for(where), timeout)

    @property
    def socket_path(self) -> Path:
        return self.aio.socket_path

    def async_client(self) -> AsyncClient:
        """An AsyncClient of the same engine for the caller's event loop (async tests: a wait
        there must not block the loop the app under test runs on); close it after use."""
        return AsyncClient(self.socket_path, self.aio.timeout)

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self.aio.close())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def status(self) -> Status:
        return self._loop.run(self.aio.status())

    def service(self, name: str) -> ServiceStatus:
        return self._loop.run(self.aio.service(name))

    def address(self, service: str) -> tuple[str, int]:
        return self._loop.run(self.aio.address(service))

    def url(self, service: str, scheme: str = "http") -> str:
        return self._loop.run(self.aio.url(service, scheme))

    def switch(self, service: str, target: str) -> None:
        self._loop.run(self.aio.switch(service, target))

    def traffic(self, filter: str | None = None, limit: int = 100) -> list[ExchangeSummary]:
        return self._loop.run(self.aio.traffic(filter, limit))

    def exchange(self, exchange_id: int) -> dict[str, Any]:
        return self._loop.run(self.aio.exchange(exchange_id))

    def slow(self, service: str, limit: int = 10) -> dict[str, Any]:
        return self._loop.run(self.aio.slow(service, limit))

    def clear_traffic(self) -> None:
        self._loop.run(self.aio.clear_traffic())

    def events(self, filter: str | None = None) -> Iterator[Event]:
        """The engine's events as they come (blocking); break out of the loop to stop."""
        return self._iterate(self.aio.events(filter))

    def _iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._loop.run(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.loop.is_closed():
                self._loop.run(stream.aclose())  # type: ignore[attr-defined]

    def wait_for(
        self, filter: str | None = None, timeout: float = 10.0, after: int | None = None
    ) -> ExchangeSummary:
        return self._loop.run(self.aio.wait_for(filter, timeout, after))

    def record(self, service: str, to: str | None = None, filter: str | None = None) -> Recording:
        return Recording(self.aio.record(service, to, filter), self._loop)

    def replay(
        self, exchange_id: int, target: str | None = None, diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        return self._loop.run(self.aio.replay(exchange_id, target, diff, ignore))

    def har(self, filter: str | None = None) -> dict[str, Any]:
        return self._loop.run(self.aio.har(filter))

    def curl(self, exchange_id: int) -> str:
        return self._loop.run(self.aio.curl(exchange_id))

    def grpcurl(self, exchange_id: int) -> str:
        return self._loop.run(self.aio.grpcurl(exchange_id))

    def logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> Iterator[str]:
        """A docker target's log lines as they come (blocking); break out to stop."""
        return self._iterate(self.aio.logs(service, target, tail, follow))

    def metrics(self) -> str:
        return self._loop.run(self.aio.metrics())

    def shutdown(self, grace: float | None = None, wait: bool = False) -> None:
        self._loop.run(self.aio.shutdown(grace, wait))


class Faults:
    """`client.faults` (blocking): see AsyncFaults."""

    def __init__(self, faults: AsyncFaults, loop: _Loop) -> None:
        self._faults, self._loop = faults, loop

    def add(self, service: str, spec: FaultLike | str, **keys: Any) -> dict[str, Any]:
        return self._loop.run(self._faults.add(service, spec, **keys))

    def list(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return self._loop.run(self._faults.list(service))

    def get(self, service: str, name: str) -> dict[str, Any]:
        return self._loop.run(self._faults.get(service, name))

    def enable(self, service: str, name: str) -> None:
        self._loop.run(self._faults.enable(service, name))

    def disable(self, service: str, name: str) -> None:
        self._loop.run(self._faults.disable(service, name))

    def remove(self, service: str, name: str) -> None:
        self._loop.run(self._faults.remove(service, name))

    def clear(self, service: str | None = None) -> None:
        self._loop.run(self._faults.clear(service))


class Scenarios:
    """`client.scenario` (blocking): see AsyncScenarios."""

    def __init__(self, scenarios: AsyncScenarios, loop: _Loop) -> None:
        self._scenarios, self._loop = scenarios, loop

    def list(self) -> list[dict[str, Any]]:
        return self._loop.run(self._scenarios.list())

    def start(self, name: str) -> None:
        self._loop.run(self._scenarios.start(name))

    def stop(self, name: str) -> None:
        self._loop.run(self._scenarios.stop(name))

    def run(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        return self._loop.run(self._scenarios.run(name, timeout))


class Recording:
    """A recording as a `with` block (blocking): see AsyncRecording."""

    def __init__(self, recording: AsyncRecording, loop: _Loop) -> None:
        self._recording, self._loop = recording, loop

    @property
    def files(self) -> list[dict[str, Any]]:
        return self._recording.files

    def start(self) -> dict[str, Any]:
        return self._loop.run(self._recording.start())

    def stop(self) -> list[dict[str, Any]]:
        return self._loop.run(self._recording.stop())

    def __enter__(self) -> Recording:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
