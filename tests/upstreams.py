"""Real upstream servers for tests: aiohttp apps and raw TCP servers on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

CHUNK = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def pattern_chunk(index: int, size: int = CHUNK) -> bytes:
    """Deterministic bytes so a client can check what arrived without the server keeping it."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def pattern_digest(total: int) -> str:
    digest = hashlib.sha256()
    sent, i = 0, 0
    while sent < total:
        chunk = pattern_chunk(i)[: total - sent]
        digest.update(chunk)
        sent += len(chunk)
        i += 1
    return digest.hexdigest()


async def _bytes(request: web.Request) -> web.StreamResponse:
    total = int(request.match_info["n"])
    delay = float(request.query.get("delay", "0"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if "length" in request.query:
        response.content_length = total
    await response.prepare(request)
    sent, i = 0, 0
    while sent < total:
        chunk = pattern_chunk(i)[: total - sent]
        await response.write(chunk)
        sent += len(chunk)
        i += 1
        if delay:
            await asyncio.sleep(delay)
    await response.write_eof()
    return response


async def _inspect(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_size": len(body),
            "upstream": request.app["name"],
        }
    )


async def _sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(int(request.query.get("n", "3"))):
        await response.write(f"data: event {i}\n\n".encode())
        await request.app["sse_gate"].wait()  # the test lets each next event go
        request.app["sse_gate"].clear()
    await response.write_eof()
    return response


async def _slow(request: web.Request) -> web.Response:
    request.app["slow_started"] += 1  # a test can wait for the request to be in flight
    await asyncio.sleep(float(request.match_info["secs"]))
    return web.Response(text="finally")


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="as asked")


def ws_echo(protocols: tuple[str, ...] = ()) -> Handler:
    """A WebSocket endpoint (offering `protocols`) that answers a text message with
    `echo:TEXT` and a binary one with its bytes reversed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=protocols)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"echo:{msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    return handler


async def _cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookie set")
    response.set_cookie("session", "abc")
    return response


async def serve_app(app: web.Application, **options: Any) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1, port 0 (`options` go to its AppRunner): the runner, whose
    `cleanup()` stops it, and the port."""
    runner = web.AppRunner(app, **options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


class HttpUpstream:
    """An aiohttp upstream with endpoints for every proxy behaviour the tests check."""

    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.app = web.Application(client_max_size=1024**3)
        self.app["name"] = name
        self.app["sse_gate"] = asyncio.Event()
        self.app["slow_started"] = 0
        self.app.router.add_get("/bytes/{n}", _bytes)
        self.app.router.add_get("/sse", _sse)
        self.app.router.add_get("/slow/{secs}", _slow)
        self.app.router.add_get("/status/{code}", _status)
        self.app.router.add_get("/ws", ws_echo(("chat",)))
        self.app.router.add_get("/cookie", _cookie)
        self.app.router.add_route("*", "/{tail:.*}", _inspect)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HttpUpstream:
        self.runner, self.port = await serve_app(self.app, shutdown_timeout=0.5)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def echo_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A TCP handler that sends back what it reads; closes once the client half-closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class TcpUpstream:
    """A TCP server that answers each connection by `handler(reader, writer)`."""

    def __init__(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpUpstream:
        self.server = await asyncio.start_server(self.handler, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def parse_json(data: bytes) -> dict:  # type: ignore[type-arg]
    return json.loads(data)
