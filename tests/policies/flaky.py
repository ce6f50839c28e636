"""An upstream that fails on command: status codes, dropped connections, slowness."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.upstreams import serve_app


class FlakyUpstream:
    def __init__(self) -> None:
        self.plan: list[str] = []  # per request, in order: "503", "drop", "slow", "ok"
        self.default = "ok"
        self.seen: list[str] = []  # method + path of each request that arrived
        self.bodies: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.method} {request.path}")
        self.bodies.append(await request.read())
        action = self.plan.pop(0) if self.plan else self.default
        if action == "drop":
            request.transport.abort()  # type: ignore[union-attr]
            return web.Response(status=499)
        if action == "slow":
            await asyncio.sleep(2)
        if action.isdigit():
            return web.Response(status=int(action), text=f"failing with {action}")
        return web.Response(text=f"ok after {len(self.seen)}")

    async def start(self) -> FlakyUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner, self.port = await serve_app(app, shutdown_timeout=0.2)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
