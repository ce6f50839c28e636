"""Shared set-up of the adversarial suite: a raw upstream that notes which request bodies reached
it whole, and an engine whose `api` service fronts it (target `raw`), with a good upstream
(target `good`) to show that the engine keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, listen_url
from tests.hardening.raw_upstream import RawUpstream, read_body, read_head
from tests.upstreams import HttpUpstream

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: raw
    timeout: 5s
    targets:
      raw: http://127.0.0.1:{raw}
      good: {good}
"""


class Receiving(RawUpstream):
    """Reads whole requests and answers each; notes the bodies it got complete."""

    def __init__(self, answer: bytes = b"ok") -> None:
        super().__init__()
        self.complete: list[bytes] = []
        self.incomplete = 0
        self.answer = answer
        self.handler = self._answer

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                return  # closed between requests: fine
            try:
                body = await read_body(reader, head)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.incomplete += 1
                return
            self.complete.append(body)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.answer))
            writer.write(self.answer)
            await writer.drain()


@pytest.fixture
async def raw() -> AsyncIterator[Receiving]:
    """The upstream behind target `raw`."""
    server = await Receiving().start()
    yield server  # type: ignore[misc]
    await server.stop()


@pytest.fixture
async def proxy(make_engine: EngineFactory, raw: Receiving, upstream: HttpUpstream):
    """(engine, host, port) of the `api` service, which sends to `raw` unless told `good`."""
    engine = await make_engine(PROFILE.format(raw=raw.port, good=upstream.url))
    host, port = engine.services["api"].bound
    return engine, host, port


async def still_serving(engine: Engine) -> None:
    """A request to the good target still gets its answer."""
    async with aiohttp.ClientSession() as client:
        resp = await client.get(
            listen_url(engine, "api") + "/next", headers={"X-Devamb-Target": "good"}
        )
        assert resp.status == 200 and (await resp.json())["upstream"] == "up"
