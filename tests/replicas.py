"""Replicas for pool and split tests: real HTTP servers on port 0 that fail, slow down or die
on command, and polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web


class Replica:
    """An aiohttp server answering its name; `/healthz` follows `healthy`.

    `status` is the answer to every other request (200 by default, 503 to fail), `delay`
    slows every answer, `die()` closes the port and `revive()` opens the same port again.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.status = 200
        self.delay = 0.0
        self.healthy = True
        self.requests = 0
        self.health_checks = 0
        self.seen: list[web.BaseRequest] = []
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/healthz":
            self.health_checks += 1
            return web.Response(status=200 if self.healthy else 500, text="health")
        self.requests += 1
        self.seen.append(request)
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text=self.name)

    async def start(self) -> Replica:
        self._runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def die(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def revive(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.die()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll `check` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or check}")
        await asyncio.sleep(0.01)
