"""Fixtures of the control tests: an EngineControl served on a real unix socket, and a real
engine with one service served that way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import EngineControl
from devamb.control.server import ControlServer
from devamb.engine.core import Engine
from tests.conftest import EngineFactory

PROFILE = """
services:
  api:
    listen: 0
    target: a
    targets:
      a: echo
      b: echo
"""

Serve = Callable[[EngineControl], Awaitable[tuple[ControlServer, ControlClient]]]
Served = tuple[Engine, ControlServer, ControlClient]
ServeProfile = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Serve a control (an Engine, or a stand-in) on a socket under tmp_path, with a client;
    both are closed after the test."""
    opened: list[tuple[ControlServer, ControlClient]] = []

    async def start(control: EngineControl) -> tuple[ControlServer, ControlClient]:
        server = ControlServer(control, tmp_path / ".devamb" / f"engine{len(opened)}.sock")
        await server.start()
        opened.append((server, ControlClient(server.socket_path)))
        return opened[-1]

    yield start
    for server, client in opened:
        await client.close()
        await server.stop()


@pytest.fixture
def serve_profile(make_engine: EngineFactory, serve: Serve) -> ServeProfile:
    """`await serve_profile(text=PROFILE)`: a real engine from profile text, served, a client."""

    async def start(text: str = PROFILE) -> Served:
        engine = await make_engine(text)
        server, client = await serve(engine)
        return engine, server, client

    return start


@pytest.fixture
async def api(serve_profile: ServeProfile) -> Served:
    """PROFILE's engine (service `api`, echo targets `a` and `b`), served, with a client."""
    return await serve_profile()
