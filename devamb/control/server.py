"""The control API: JSON over HTTP on the engine's private unix socket.

Its routes are the table in control/routes.py (method, path, typed arguments, kind of answer);
this module derives one handler from each: decode the arguments, call the EngineControl method
the route names, and answer JSON, text, or a stream of JSON lines (events, log lines).
Refusals answer {"error": MESSAGE} with the ControlError's status (400, 404, 409); requests
from browsers (they send Origin) 403; an unknown path 404 and a known path with another
method 405, both with {"error": ...}.

The HTTP/1.1 is served here on httptools (control/http_server.py) rather than by aiohttp's
web server: that one alone made ~15 MiB of an engine's memory, for a handful of local calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from devamb.control.http_server import HttpServer, Reply, Request, Stream
from devamb.control.protocol import ControlError, EngineControl
from devamb.control.workdir import fallback_socket_dir, private_dir, socket_answers

if TYPE_CHECKING:
    from devamb.control.routes import Route


class SocketInUse(Exception):
    """Another process answers on the control socket this engine was to use."""


NDJSON = "application/x-ndjson"
_PARAM = re.compile(r"\{(\w+)\}")


def _pattern(path: str) -> re.Pattern[str]:
    """A route path ("/v1/exchanges/{id}") as a regex with one group per parameter."""
    parts = _PARAM.split(path)  # text, name, text, name, ..., text
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


class Router:
    """Finds the route of a request; knows the methods of a path for a 405's Allow."""

    def __init__(self, routes: tuple[Route[Any], ...]) -> None:
        self.routes = [(route, _pattern(route.path)) for route in routes]

    def find(self, method: str, path: str) -> tuple[Route[Any] | None, dict[str, str], list[str]]:
        """The route and its path parameters; or None and the methods the path allows."""
        allowed: list[str] = []
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, []
            allowed.append(route.method)
        return None, {}, allowed


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply.json({"error": message}, status, headers)


def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body) if request.body else None
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


class ControlApp:
    """What answers each request: the route's method on the EngineControl."""

    def __init__(self, control: EngineControl) -> None:
        self.control = control

    @cached_property
    def router(self) -> Router:
        """Made at the first request: the route table and its ~40 compiled paths are ~0.1 MiB
        of an engine that may never be asked (issue 22: RSS after start)."""
        from devamb.control.routes import TABLE

        return Router(TABLE)

    async def __call__(self, request: Request, reply: Callable[[Reply], Stream]) -> Reply | None:
        if "origin" in request.headers:
            return _error(403, "requests from browsers are refused")
        route, params, allowed = self.router.find(request.method, request.path)
        if route is None:
            if allowed:
                why = f"Method Not Allowed: {request.method} {request.path}"
                return _error(405, why, {"Allow": ",".join(allowed)})
            return _error(404, f"Not Found: {request.method} {request.path}")
        try:
            body = _body(request) if route.has_body else {}
            query = dict(parse_qsl(request.query, keep_blank_values=True))
            args = route.decode(params, query, body)
            method = getattr(self.control, route.name)  # the route table's declared name
            if route.kind == "stream":
                await _stream(route, method(**args), args, reply)
                return None
            result = await method(**args)
        except ControlError as exc:
            return _error(exc.status, exc.message)
        if route.kind == "text":
            return Reply.text(result, {"X-Content-Type-Options": "nosniff"})
        return Reply.json(route.answer(result, args))


_END = object()


async def _stream(
    route: Route[Any], items: AsyncIterator[Any], args: dict[str, Any],
    reply: Callable[[Reply], Stream],
) -> None:
    """One JSON line per item. The first item is taken before the answer starts, so that a
    refusal (an unknown name, a bad filter, not a docker target) still answers with its status;
    a refusal later in the stream is its last line, {"error": MESSAGE}."""
    try:
        try:
            first: Any = await anext(items)
        except StopAsyncIteration:
            first = _END
        stream = reply(Reply.stream(NDJSON))
        try:
            if first is not _END:
                await stream.write(json.dumps(route.answer(first, args)).encode() + b"\n")
                async for item in items:
                    await stream.write(json.dumps(route.answer(item, args)).encode() + b"\n")
        except ControlError as exc:
            with contextlib.suppress(ConnectionError):
                await stream.write(json.dumps({"error": exc.message}).encode() + b"\n")
        except ConnectionError:
            pass  # the reader went away
        await stream.end()
    finally:
        if isinstance(items, AsyncGenerator):
            await items.aclose()


class ControlServer:
    def __init__(self, control: EngineControl, socket_path: Path) -> None:
        self.control = control
        self.socket_path = socket_path
        self._server: HttpServer | None = None

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
        server = HttpServer(ControlApp(self.control))
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            await server.listen_unix(str(self.socket_path))
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close(grace=1.0)
            self._server = None
        if self.socket_path.exists():
            self.socket_path.unlink()
