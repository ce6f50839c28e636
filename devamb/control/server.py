"""The control API: JSON over HTTP on the engine's private unix socket.

GET  /v1/status                  -> Status
POST /v1/switch   {service, target}
GET  /v1/exchanges?limit=N       -> [ExchangeSummary, ...] oldest first
GET  /v1/events                  -> JSON lines, one Event per line, until the engine stops
POST /v1/shutdown
Errors answer {"error": MESSAGE} with 400 (bad input) or 404 (unknown service/target).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aiohttp import web

from devamb.control.protocol import ControlError, EngineControl

CONTROL = web.AppKey("control", EngineControl)


@web.middleware
async def refuse_browsers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Browsers send Origin; scripts, the CLI and the TUI do not. Nothing else may drive us."""
    if "Origin" in request.headers:
        return web.json_response({"error": "requests from browsers are refused"}, status=403)
    try:
        return await handler(request)
    except ControlError as exc:
        return web.json_response({"error": exc.message}, status=404)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].status())


async def _switch(request: web.Request) -> web.Response:
    body = await _json(request)
    service, target = body.get("service"), body.get("target")
    if not isinstance(service, str) or not isinstance(target, str):
        return web.json_response({"error": "expected {service, target}"}, status=400)
    await request.app[CONTROL].switch(service, target)
    return web.json_response({"service": service, "target": target})


async def _exchanges(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return web.json_response({"error": "limit must be a whole number"}, status=400)
    return web.json_response(await request.app[CONTROL].exchanges(limit))


async def _events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        async for event in request.app[CONTROL].events():
            await response.write(json.dumps(event).encode() + b"\n")
    except ConnectionError:
        pass
    return response


async def _shutdown(request: web.Request) -> web.Response:
    await request.app[CONTROL].shutdown()
    return web.json_response({"stopping": True})


async def _json(request: web.Request) -> dict:  # type: ignore[type-arg]
    try:
        data = await request.json()
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def make_app(control: EngineControl) -> web.Application:
    app = web.Application(middlewares=[refuse_browsers])
    app[CONTROL] = control
    app.router.add_get("/v1/status", _status)
    app.router.add_post("/v1/switch", _switch)
    app.router.add_get("/v1/exchanges", _exchanges)
    app.router.add_get("/v1/events", _events)
    app.router.add_post("/v1/shutdown", _shutdown)
    return app


class ControlServer:
    def __init__(self, control: EngineControl, socket_path: Path) -> None:
        self.control = control
        self.socket_path = socket_path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        runner = web.AppRunner(
            make_app(self.control), handle_signals=False, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            await web.UnixSite(runner, str(self.socket_path)).start()
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.socket_path.exists():
            self.socket_path.unlink()
