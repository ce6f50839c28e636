"""Fixtures of the control tests: an EngineControl served on a real unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import EngineControl
from devamb.control.server import ControlServer

Serve = Callable[[EngineControl], Awaitable[tuple[ControlServer, ControlClient]]]


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
