"""The control API: JSON over HTTP on the engine's private unix socket.

GET  /v1/status                  -> Status
POST /v1/switch   {service, target}
GET  /v1/exchanges?limit=N&filter=EXPR -> [ExchangeSummary, ...] oldest first
GET  /v1/exchanges/ID (detail) · /v1/exchanges/ID/curl · POST /v1/exchanges/ID/replay
     {target?, diff?, ignore?} · POST /v1/exchanges/clear · GET /v1/export/har?filter=EXPR
GET  /v1/events                  -> JSON lines, one Event per line, until the engine stops
POST /v1/shutdown {grace?: seconds, wait?: bool} -> {stopping, grace, in_flight}; with wait,
     after the drain: {stopping, grace, in_flight, finished, cut: {service: n}}
GET  /v1/faults?service=S        -> {service: [fault, ...]}
POST /v1/faults   {service, fault: {kind, name?, ...profile keys}}  -> the fault
POST /v1/faults/toggle {service, name, enabled} · /v1/faults/remove {service, name}
POST /v1/faults/clear {service?}
GET  /metrics                    -> Prometheus text format
GET  /v1/logs?service=S&target=T&tail=N&follow=1 -> JSON lines {"line"} (docker targets)
POST /v1/record/start {service, to?, filter?} · POST /v1/record/stop {service?}
GET  /v1/scenarios · POST /v1/scenarios/start {name} · /v1/scenarios/stop {name}
Errors answer {"error": MESSAGE} with 400 (bad input) or 404 (unknown service/target).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from devamb.control.protocol import ControlError, EngineControl
from devamb.control.workdir import fallback_socket_dir, private_dir, socket_answers


class SocketInUse(Exception):
    """Another process answers on the control socket this engine was to use."""

CONTROL = web.AppKey("control", EngineControl)


@web.middleware
async def refuse_browsers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Browsers send Origin; scripts, the CLI and the TUI do not. Nothing else may drive us."""
    if "Origin" in request.headers:
        return web.json_response({"error": "requests from browsers are refused"}, status=403)
    try:
        return await handler(request)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except ControlError as exc:
        return web.json_response({"error": exc.message}, status=404)


class BadRequest(Exception):
    """The request's JSON does not have the fields the endpoint takes."""


async def _fields(request: web.Request, **types: type) -> list[Any]:
    """The named fields of the JSON body, each checked against its type."""
    body = await _json(request)
    values = [body.get(name) for name in types]
    if not all(isinstance(v, t) for v, t in zip(values, types.values(), strict=True)):
        raise BadRequest("expected {" + ", ".join(types) + "}")
    return values


async def _status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].status())


async def _switch(request: web.Request) -> web.Response:
    service, target = await _fields(request, service=str, target=str)
    await request.app[CONTROL].switch(service, target)
    return web.json_response({"service": service, "target": target})


async def _exchanges(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return web.json_response({"error": "limit must be a whole number"}, status=400)
    filter_text = request.query.get("filter") or None
    return web.json_response(await request.app[CONTROL].exchanges(limit, filter_text))


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise ControlError("an exchange id is a whole number") from None


async def _exchange(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].exchange(_id(request)))


async def _curl(request: web.Request) -> web.Response:
    return web.json_response({"curl": await request.app[CONTROL].export_curl(_id(request))})


async def _clear_exchanges(request: web.Request) -> web.Response:
    await request.app[CONTROL].clear_exchanges()
    return web.json_response({"cleared": True})


async def _har(request: web.Request) -> web.Response:
    filter_text = request.query.get("filter") or None
    return web.json_response(await request.app[CONTROL].export_har(filter_text))


async def _replay(request: web.Request) -> web.Response:
    body = await _json(request)
    target, ignore = body.get("target"), body.get("ignore") or []
    if target is not None and not isinstance(target, str):
        return web.json_response({"error": "target must be a string"}, status=400)
    result = await request.app[CONTROL].replay(
        _id(request), target, bool(body.get("diff")), [str(i) for i in ignore]
    )
    return web.json_response(result)


async def _events(request: web.Request) -> web.StreamResponse:
    filter_text = request.query.get("filter") or None
    if filter_text:
        await request.app[CONTROL].exchanges(0, filter_text)  # a bad filter fails here, as 404
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        async for event in request.app[CONTROL].events(filter_text):
            await response.write(json.dumps(event).encode() + b"\n")
    except ConnectionError:
        pass
    return response


async def _logs(request: web.Request) -> web.StreamResponse:
    query = request.query
    service, target = query.get("service", ""), query.get("target", "")
    lines = request.app[CONTROL].container_logs(
        service, target, int(query.get("tail", "200")), query.get("follow", "1") == "1"
    )
    try:
        first = await anext(lines)  # errors (not a docker target, no container) answer 404
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(json.dumps({"line": first}).encode() + b"\n")
        async for line in lines:
            await response.write(json.dumps({"line": line}).encode() + b"\n")
    except ConnectionError:
        pass
    finally:
        await lines.aclose()
    return response


async def _record(request: web.Request) -> web.Response:
    body = await _json(request)
    control = request.app[CONTROL]
    if request.match_info["action"] == "start":
        if not isinstance(body.get("service"), str):
            return web.json_response({"error": "expected {service, to?, filter?}"}, status=400)
        result = await control.start_recording(body["service"], body.get("to"),
                                               body.get("filter"))
        return web.json_response(result)
    return web.json_response(await control.stop_recording(body.get("service")))


async def _metrics(request: web.Request) -> web.Response:
    text = await request.app[CONTROL].metrics()
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def _shutdown(request: web.Request) -> web.Response:
    body = await _json(request)
    grace = body.get("grace")
    if grace is not None and (not isinstance(grace, int | float) or grace < 0):
        raise BadRequest("grace must be a number of seconds, 0 or more")
    report = await request.app[CONTROL].shutdown(grace, bool(body.get("wait")))
    return web.json_response({"stopping": True, **(report or {})})


async def _json(request: web.Request) -> dict:  # type: ignore[type-arg]
    try:
        data = await request.json()
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


async def _faults(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].faults(request.query.get("service")))


async def _add_fault(request: web.Request) -> web.Response:
    service, fault = await _fields(request, service=str, fault=dict)
    return web.json_response(await request.app[CONTROL].add_fault(service, fault))


async def _toggle_fault(request: web.Request) -> web.Response:
    service, name, enabled = await _fields(request, service=str, name=str, enabled=bool)
    await request.app[CONTROL].set_fault(service, name, enabled)
    return web.json_response({"service": service, "name": name, "enabled": enabled})


async def _remove_fault(request: web.Request) -> web.Response:
    service, name = await _fields(request, service=str, name=str)
    await request.app[CONTROL].remove_fault(service, name)
    return web.json_response({"service": service, "removed": name})


async def _clear_faults(request: web.Request) -> web.Response:
    service = (await _json(request)).get("service")
    await request.app[CONTROL].clear_faults(service if isinstance(service, str) else None)
    return web.json_response({"cleared": service or "all"})


async def _scenarios(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].scenarios())


async def _scenario(request: web.Request) -> web.Response:
    [name] = await _fields(request, name=str)
    control = request.app[CONTROL]
    if request.match_info["action"] == "start":
        await control.start_scenario(name)
    else:
        await control.stop_scenario(name)
    return web.json_response({"scenario": name, "action": request.match_info["action"]})


def make_app(control: EngineControl) -> web.Application:
    app = web.Application(middlewares=[refuse_browsers])
    app[CONTROL] = control
    app.router.add_get("/v1/status", _status)
    app.router.add_post("/v1/switch", _switch)
    app.router.add_get("/v1/exchanges", _exchanges)
    app.router.add_post("/v1/exchanges/clear", _clear_exchanges)
    app.router.add_get("/v1/exchanges/{id}", _exchange)
    app.router.add_get("/v1/exchanges/{id}/curl", _curl)
    app.router.add_post("/v1/exchanges/{id}/replay", _replay)
    app.router.add_get("/v1/export/har", _har)
    app.router.add_get("/v1/events", _events)
    app.router.add_post("/v1/shutdown", _shutdown)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/v1/logs", _logs)
    app.router.add_post("/v1/record/{action:start|stop}", _record)
    app.router.add_get("/v1/faults", _faults)
    app.router.add_post("/v1/faults", _add_fault)
    app.router.add_post("/v1/faults/toggle", _toggle_fault)
    app.router.add_post("/v1/faults/remove", _remove_fault)
    app.router.add_post("/v1/faults/clear", _clear_faults)
    app.router.add_get("/v1/scenarios", _scenarios)
    app.router.add_post("/v1/scenarios/{action:start|stop}", _scenario)
    return app



class ControlServer:
    def __init__(self, control: EngineControl, socket_path: Path) -> None:
        self.control = control
        self.socket_path = socket_path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        folder = self.socket_path.parent
        if folder == fallback_socket_dir():
            private_dir(folder)  # raises UnsafeSocketDir when another user could reach it
        else:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.socket_path.exists():
            if socket_answers(self.socket_path):
                raise SocketInUse(f"another engine answers on {self.socket_path}")
            self.socket_path.unlink()  # left behind by an engine that is gone
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
