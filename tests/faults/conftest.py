"""Fault tests: engines with an injected clock and seeded randomness, upstreams that count."""

from __future__ import annotations

import asyncio
import contextlib
import random
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.faults.base import FaultContext
from devamb.inspect.exchange import Exchange
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: up
    timeout: 5s
    header_faults: {header_faults}
    targets:
      up: {http}
{api_extra}
  raw:
    listen: 0
    protocol: tcp
    target: up
    timeout: 5s
    targets:
      up: tcp://127.0.0.1:{tcp}
"""


class FakeTime:
    """A clock that only moves when something sleeps: sleeps return at once, time adds up."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingUpstream(HttpUpstream):
    """The shared test upstream, remembering every request it was handed."""

    def __init__(self, name: str = "up") -> None:
        super().__init__(name)
        self.seen: list[tuple[str, str]] = []

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen.append((request.method, request.path))
            return await handler(request)

        self.app.middlewares.append(count)


class Setup:
    """An engine with one HTTP (`api`) and one TCP (`raw`) service in front of real upstreams."""

    def __init__(self, engine: Engine, http: CountingUpstream, tcp: TcpUpstream,
                 time_: FakeTime | None) -> None:
        self.engine = engine
        self.http = http
        self.tcp = tcp
        self.time = time_

    @property
    def url(self) -> str:
        host, port = self.engine.services["api"].bound  # type: ignore[misc]
        return f"http://{host}:{port}"

    @property
    def tcp_port(self) -> int:
        return self.engine.services["raw"].bound[1]  # type: ignore[index]

    async def add(self, service: str, **fault: Any) -> dict[str, Any]:
        return await self.engine.add_fault(service, fault)

    async def recorded(self, n: int = 1, timeout: float = 5.0) -> list[Exchange]:
        """The last `n` exchanges, once `n` are recorded (a record lands just after the reply)."""
        deadline = time.monotonic() + timeout
        while len(self.engine.store.recent(n)) < n or any(
            e.duration_ms is None for e in self.engine.store.recent(n)
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {n} exchanges recorded")
            await asyncio.sleep(0.01)
        return self.engine.store.recent(n)


SetupFactory = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[SetupFactory]:
    """`await setup(fake=True, seed=1, header_faults=False, tcp_handler=echo_bytes, extra='',
    api_extra='', time_=None)`: `extra` is more top-level YAML, `api_extra` more keys for the
    `api` service, `time_` an object with `sleep` and `clock` instead of a FakeTime."""
    started: list[tuple[Engine, CountingUpstream, TcpUpstream]] = []

    async def factory(*, fake: bool = True, seed: int = 1, header_faults: bool = False,
                      tcp_handler: Any = echo_bytes, extra: str = "", api_extra: str = "",
                      time_: Any = None) -> Setup:
        http = await CountingUpstream().start()
        tcp = await TcpUpstream(tcp_handler).start()
        text = PROFILE.format(http=http.url, tcp=tcp.port,
                              header_faults=str(header_faults).lower(),
                              api_extra=textwrap.indent(textwrap.dedent(api_extra), "    "))
        path = tmp_path / "devamb.yaml"
        path.write_text(textwrap.dedent(text) + textwrap.dedent(extra))
        fake_time = time_ or (FakeTime() if fake else None)
        ctx = FaultContext(rng=random.Random(seed))
        if fake_time is not None:
            ctx = FaultContext(rng=random.Random(seed), sleep=fake_time.sleep,
                               clock=fake_time.clock)
        engine = Engine(load_profile(path), fault_context=ctx)
        await engine.start()
        started.append((engine, http, tcp))
        return Setup(engine, http, tcp, fake_time)

    yield factory
    for engine, http, tcp in started:
        await engine.stop()
        await http.stop()
        await tcp.stop()


def greet(data: bytes, *, wait: float = 0.0) -> Any:
    """An upstream that speaks first: sends `data` (after `wait` seconds), then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if wait:
            await asyncio.sleep(wait)
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return handler


async def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0,
                       half_close: bool = False) -> tuple[bytes, BaseException | None]:
    """Send raw bytes, read until EOF or an error: what arrived, and the error (or None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    error: BaseException | None = None
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except (OSError, TimeoutError) as exc:
        error = exc
    finally:
        writer.close()
    return received, error


def get(path: str = "/x") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
