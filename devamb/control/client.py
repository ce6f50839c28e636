"""ControlClient: EngineControl over the engine's unix socket (used by the CLI and the TUI).

Each method is a thin typed call of its route in control/routes.py, which says how its
arguments travel and what comes back; an answer of 400, 404 or 409 becomes the ControlError
(NotFound, Conflict) the engine raised, with its message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from devamb.control.protocol import (
    ControlError,
    EngineUnavailable,
    Event,
    ExchangeSummary,
    Status,
    refusal,
)
from devamb.control.routes import ROUTES, Route
from devamb.control.wire import Answer, Closed, open_answer

R = TypeVar("R")


def _refusal(answer: Answer, body: bytes) -> ControlError:
    """The ControlError an error answer carries ({"error": MESSAGE}, else its status)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    message = data.get("error") if isinstance(data, dict) else None
    return refusal(answer.status, str(message or f"HTTP {answer.status}"))


class ControlClient:
    """A connection per call (a unix socket connects in microseconds). No HTTP client library:
    `devamb status` would spend most of its time importing one (control/wire.py)."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._open: set[Answer] = set()  # streams being read, closed by `close`

    async def close(self) -> None:
        for answer in list(self._open):
            answer.close()
        self._open.clear()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _unavailable(self, exc: BaseException, lost: bool = False) -> EngineUnavailable:
        """Plain words for why the engine cannot be reached (never the HTTP client's wording)."""
        if isinstance(exc, FileNotFoundError):
            why = f"no engine: there is no control socket at {self.socket_path}"
        elif isinstance(exc, ConnectionRefusedError):
            why = f"no engine: nothing accepts on {self.socket_path} (an engine left it behind)"
        elif isinstance(exc, TimeoutError):
            why = f"the engine on {self.socket_path} did not answer within {self._timeout:g}s"
        elif lost:
            why = f"lost the engine on {self.socket_path} (it stopped or died)"
        else:
            why = f"the engine on {self.socket_path} closed the connection (it stopped or died)"
        return EngineUnavailable(why)

    async def _call(self, route: Route[R], timeout: float | None = None, **args: Any) -> R:
        """One request of `route` (JSON or text answer); `timeout` overrides the client's."""
        url, body = route.encode(args)
        try:
            async with asyncio.timeout(timeout or self._timeout):
                answer = await open_answer(self.socket_path, route.method, url, body)
                try:
                    data = await (await answer.headed()).read_all()
                finally:
                    answer.close()
        except (Closed, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None
        if answer.status >= 400:
            raise _refusal(answer, data)
        if route.kind == "text":
            return route.unwrap(data.decode("utf-8", "replace"))
        return route.unwrap(json.loads(data))

    async def _stream(self, route: Route[R], **args: Any) -> AsyncIterator[R]:
        """The items of a streaming route, one JSON line each, until the engine ends it."""
        url, _ = route.encode(args)
        try:
            async with asyncio.timeout(self._timeout):  # to connect: the first item may take long
                answer = await open_answer(self.socket_path, route.method, url, None)
        except (OSError, TimeoutError) as exc:
            raise self._unavailable(exc, lost=True) from None
        self._open.add(answer)
        try:
            try:
                await answer.headed()
            except (Closed, OSError) as exc:
                raise self._unavailable(exc, lost=True) from None
            if answer.status >= 400:
                try:
                    body = await answer.read_all()
                except (Closed, OSError) as exc:
                    raise self._unavailable(exc, lost=True) from None
                raise _refusal(answer, body)
            try:
                async for line in answer.lines():
                    if line.strip():
                        data = json.loads(line)
                        if isinstance(data, dict) and data.keys() == {"error"}:
                            raise ControlError(str(data["error"]))  # refused mid-stream
                        yield route.unwrap(data)
            except (Closed, OSError) as exc:
                raise self._unavailable(exc, lost=True) from None
        finally:
            self._open.discard(answer)
            answer.close()

    async def status(self) -> Status:
        return await self._call(ROUTES.status)

    async def switch(self, service: str, target: str, on_switch: str | None = None) -> None:
        await self._call(ROUTES.switch, service=service, target=target, on_switch=on_switch)

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        return await self._call(ROUTES.exchanges, limit=limit, filter=filter)

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        return await self._call(ROUTES.exchange, exchange_id=exchange_id)

    async def clear_exchanges(self) -> None:
        await self._call(ROUTES.clear_exchanges)

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        return await self._call(ROUTES.export_har, filter=filter)

    async def slow_statements(self, service: str, limit: int = 10) -> dict[str, Any]:
        return await self._call(ROUTES.slow_statements, service=service, limit=limit)

    async def export_curl(self, exchange_id: int) -> str:
        return await self._call(ROUTES.export_curl, exchange_id=exchange_id)

    async def export_grpcurl(self, exchange_id: int) -> str:
        return await self._call(ROUTES.export_grpcurl, exchange_id=exchange_id)

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            ROUTES.replay, exchange_id=exchange_id, target=target, diff=diff, ignore=ignore or []
        )

    def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        return self._stream(ROUTES.events, filter=filter)

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        timeout = None
        if wait:  # the answer comes after the drain (without a grace: the engine's default)
            timeout = 3600.0 if grace is None else grace + 30.0
        return await self._call(ROUTES.shutdown, timeout, grace=grace, wait=wait)

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return await self._call(ROUTES.faults, service=service)

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        return await self._call(ROUTES.add_fault, service=service, fault=fault)

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        await self._call(ROUTES.set_fault, service=service, name=name, enabled=enabled)

    async def remove_fault(self, service: str, name: str) -> None:
        await self._call(ROUTES.remove_fault, service=service, name=name)

    async def clear_faults(self, service: str | None = None) -> None:
        await self._call(ROUTES.clear_faults, service=service)

    def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        return self._stream(
            ROUTES.container_logs, service=service, target=target, tail=tail, follow=follow
        )

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        return await self._call(ROUTES.start_recording, service=service, to=to, filter=filter)

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        return await self._call(ROUTES.stop_recording, service=service)

    async def metrics(self) -> str:
        return await self._call(ROUTES.metrics)

    async def scenarios(self) -> list[dict[str, Any]]:
        return await self._call(ROUTES.scenarios)

    async def start_scenario(self, name: str) -> None:
        await self._call(ROUTES.start_scenario, name=name)

    async def stop_scenario(self, name: str) -> None:
        await self._call(ROUTES.stop_scenario, name=name)
