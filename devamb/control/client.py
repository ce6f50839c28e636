"""ControlClient: EngineControl over the engine's unix socket (used by the CLI and the TUI)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from devamb.control.protocol import (
    ControlError,
    EngineUnavailable,
    Event,
    ExchangeSummary,
    Status,
)

BASE = "http://devamb"


class ControlClient:
    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _unavailable(self, exc: BaseException, lost: bool = False) -> EngineUnavailable:
        """Plain words for why the engine cannot be reached (never the HTTP client's wording)."""
        if isinstance(exc, FileNotFoundError) or (
            isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, FileNotFoundError)
        ):
            why = f"no engine: there is no control socket at {self.socket_path}"
        elif isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, ConnectionRefusedError)
        ):
            why = f"no engine: nothing accepts on {self.socket_path} (an engine left it behind)"
        elif isinstance(exc, TimeoutError):
            why = f"the engine on {self.socket_path} did not answer within {self._timeout:g}s"
        elif lost:
            why = f"lost the engine on {self.socket_path} (it stopped or died)"
        else:
            why = f"the engine on {self.socket_path} closed the connection (it stopped or died)"
        return EngineUnavailable(why)

    async def _call(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        try:
            async with self._client().request(
                method,
                BASE + path,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise ControlError(data.get("error", f"HTTP {resp.status}"))
                return data
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None

    async def status(self) -> Status:
        return await self._call("GET", "/v1/status")

    async def switch(self, service: str, target: str) -> None:
        await self._call("POST", "/v1/switch", {"service": service, "target": target})

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        query = urlencode({"limit": limit, **({"filter": filter} if filter else {})})
        return await self._call("GET", f"/v1/exchanges?{query}")

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        return await self._call("GET", f"/v1/exchanges/{exchange_id}")

    async def clear_exchanges(self) -> None:
        await self._call("POST", "/v1/exchanges/clear")

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        query = f"?{urlencode({'filter': filter})}" if filter else ""
        return await self._call("GET", f"/v1/export/har{query}")

    async def export_curl(self, exchange_id: int) -> str:
        return (await self._call("GET", f"/v1/exchanges/{exchange_id}/curl"))["curl"]

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        body = {"target": target, "diff": diff, "ignore": ignore or []}
        return await self._call("POST", f"/v1/exchanges/{exchange_id}/replay", body)

    async def events(self, filter: str | None = None) -> AsyncIterator[Event]:
        query = f"?{urlencode({'filter': filter})}" if filter else ""
        try:
            async with self._client().get(BASE + "/v1/events" + query) as resp:
                if resp.status >= 400:
                    raise ControlError((await resp.json(content_type=None)).get("error", "?"))
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unavailable(exc, lost=True) from None

    async def shutdown(
        self, grace: float | None = None, wait: bool = False
    ) -> dict[str, Any] | None:
        body = {"grace": grace, "wait": wait}
        timeout = None
        if wait:  # the answer comes after the drain (without a grace: the engine's default)
            timeout = 3600.0 if grace is None else grace + 30.0
        return await self._call("POST", "/v1/shutdown", body, timeout=timeout)

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return await self._call("GET", "/v1/faults" + (f"?service={service}" if service else ""))

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/v1/faults", {"service": service, "fault": fault})

    async def set_fault(self, service: str, name: str, enabled: bool) -> None:
        body = {"service": service, "name": name, "enabled": enabled}
        await self._call("POST", "/v1/faults/toggle", body)

    async def remove_fault(self, service: str, name: str) -> None:
        await self._call("POST", "/v1/faults/remove", {"service": service, "name": name})

    async def clear_faults(self, service: str | None = None) -> None:
        await self._call("POST", "/v1/faults/clear", {"service": service})

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        query = urlencode({"service": service, "target": target, "tail": tail,
                           "follow": "1" if follow else "0"})
        try:
            async with self._client().get(BASE + "/v1/logs?" + query) as resp:
                if resp.status >= 400:
                    raise ControlError((await resp.json(content_type=None)).get("error", "?"))
                async for raw in resp.content:
                    if raw.strip():
                        yield json.loads(raw)["line"]
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unavailable(exc, lost=True) from None

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        body = {"service": service, "to": to, "filter": filter}
        return await self._call("POST", "/v1/record/start", body)

    async def stop_recording(self, service: str | None = None) -> list[dict[str, Any]]:
        return await self._call("POST", "/v1/record/stop", {"service": service})

    async def metrics(self) -> str:
        try:
            async with self._client().get(BASE + "/metrics") as resp:
                return await resp.text()
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None

    async def scenarios(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/v1/scenarios")

    async def start_scenario(self, name: str) -> None:
        await self._call("POST", "/v1/scenarios/start", {"name": name})

    async def stop_scenario(self, name: str) -> None:
        await self._call("POST", "/v1/scenarios/stop", {"name": name})
