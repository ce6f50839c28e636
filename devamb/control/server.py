"""The control API: JSON over HTTP on the engine's private unix socket.

Its routes are the table in control/routes.py (method, path, typed arguments, kind of answer);
this module derives one aiohttp handler from each: decode the arguments, call the EngineControl
method the route names, and answer JSON, text, or a stream of JSON lines (events, log lines).
Refusals answer {"error": MESSAGE} with the ControlError's status (400, 404, 409); requests
from browsers (they send Origin) 403.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from devamb.control.protocol import ControlError, EngineControl
from devamb.control.routes import TABLE, Route
from devamb.control.workdir import fallback_socket_dir, private_dir, socket_answers


class SocketInUse(Exception):
    """Another process answers on the control socket this engine was to use."""


CONTROL = web.AppKey("control", EngineControl)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NDJSON = {"Content-Type": "application/x-ndjson"}


@web.middleware
async def refuse_browsers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browsers send Origin; scripts, the CLI and the TUI do not. Nothing else may drive us.
    Refusals, also aiohttp's own (no such endpoint, wrong method), answer {"error": ...}."""
    if "Origin" in request.headers:
        return web.json_response({"error": "requests from browsers are refused"}, status=403)
    try:
        return await handler(request)
    except ControlError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        why = f"{exc.reason}: {request.method} {request.path}"
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": why}, status=exc.status, headers=allow)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def _handler(route: Route[Any]) -> Handler:
    """The handler of one route: the arguments from the request, the call, the answer."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await _json(request) if route.has_body else {}
        args = route.decode(request.match_info, request.query, body)
        method = getattr(request.app[CONTROL], route.name)  # the route table's declared name
        if route.kind == "stream":
            return await _stream(request, route, method(**args), args)
        result = await method(**args)
        if route.kind == "text":
            return web.Response(text=result, content_type="text/plain", charset="utf-8",
                                headers={"X-Content-Type-Options": "nosniff"})
        return web.json_response(route.answer(result, args))

    handle.__name__ = f"_{route.name}"
    return handle


_END = object()


async def _stream(
    request: web.Request, route: Route[Any], items: AsyncIterator[Any], args: dict[str, Any]
) -> web.StreamResponse:
    """One JSON line per item. The first item is taken before the answer starts, so that a
    refusal (an unknown name, a bad filter, not a docker target) still answers with its status;
    a refusal later in the stream is its last line, {"error": MESSAGE}."""
    try:
        try:
            first: Any = await anext(items)
        except StopAsyncIteration:
            first = _END
        response = web.StreamResponse(headers=NDJSON)
        await response.prepare(request)
        try:
            if first is not _END:
                await response.write(json.dumps(route.answer(first, args)).encode() + b"\n")
                async for item in items:
                    await response.write(json.dumps(route.answer(item, args)).encode() + b"\n")
        except ControlError as exc:
            with contextlib.suppress(ConnectionError):
                await response.write(json.dumps({"error": exc.message}).encode() + b"\n")
        except ConnectionError:
            pass  # the reader went away
    finally:
        if isinstance(items, AsyncGenerator):
            await items.aclose()
    return response


def make_app(control: EngineControl) -> web.Application:
    app = web.Application(middlewares=[refuse_browsers])
    app[CONTROL] = control
    for route in TABLE:
        app.router.add_route(route.method, route.path, _handler(route), name=route.name)
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
