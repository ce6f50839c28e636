"""Shared fixtures: real upstreams on port 0, engines started from profile text, a tmux
terminal; and the helpers many test folders use."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devamb.control.events import Notice
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.profile import ProfileError
from tests.replicas import Replica
from tests.tmux import Terminal
from tests.upstreams import HttpUpstream

EngineFactory = Callable[..., Awaitable[Engine]]  # (text, **Engine options) -> started Engine


@pytest.fixture
async def upstream() -> AsyncIterator[HttpUpstream]:
    server = await HttpUpstream("up").start()
    yield server
    await server.stop()


@pytest.fixture
async def upstream2() -> AsyncIterator[HttpUpstream]:
    server = await HttpUpstream("up2").start()
    yield server
    await server.stop()


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[EngineFactory]:
    """Start an in-process engine from profile YAML text (dedented), with more keyword arguments
    for Engine (e.g. `fault_context=`); stopped after the test."""
    engines: list[Engine] = []

    async def factory(text: str, **options: Any) -> Engine:
        path = tmp_path / "devamb.yaml"
        path.write_text(textwrap.dedent(text))
        engine = Engine(load_profile(path), **options)
        await engine.start()
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        await engine.stop()


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Three replicas, r0 to r2 (tests/replicas.py), stopped after the test."""
    made = [await Replica(f"r{i}").start() for i in range(3)]
    yield made
    for replica in made:
        await replica.stop()


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A tmux terminal of its own for this test; its server is killed after it."""
    term = Terminal.fresh()
    yield term
    term.kill()


def listen_url(engine: Engine, service: str) -> str:
    host, port = engine.services[service].bound  # type: ignore[misc]
    return f"http://{host}:{port}"


async def devamb(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the real `devamb` command (`python -m devamb ARGS` in `cwd`): exit code, out, err."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devamb",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def load_problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """The problems loading the profile at `path` reports (it must refuse it), with the path
    shown as devamb.yaml; `environ` is the whole environment (none by default)."""
    with pytest.raises(ProfileError) as info:
        load_profile(path, environ=environ or {})
    return [str(p).replace(str(path), "devamb.yaml") for p in info.value.problems]


def problems(tmp_path: Path, text: str) -> list[str]:
    """`text` written as it is to tmp_path/devamb.yaml: the problems loading it reports."""
    path = tmp_path / "devamb.yaml"
    path.write_text(text)
    return load_problems(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Notices:
    """Collects the engine's notices (what the TUI and the log show) as they are published.

    Targets tell the developer through their context's notice callback, which is the engine's:
    tests read the notices where the TUI does. Collecting takes a turn of the event loop, so
    wait for a notice (`eventually`) rather than reading it right after its cause."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[tuple[str, str]] = []  # (level, message)
        self._subscription = engine.bus.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self._subscription:
            if isinstance(event, Notice):
                self.seen.append((event.level, event.message))

    @property
    def messages(self) -> list[str]:
        return [f"{level}: {message}" for level, message in self.seen]

    def saying(self, text: str) -> list[str]:
        return [m for m in self.messages if text in m]

    def last(self) -> tuple[str, str] | None:
        return self.seen[-1] if self.seen else None


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic garbage collector off for the test (after one collection): what is still
    in memory at its end is what reference counting alone did not free (a reference cycle,
    which the engine's collector settings keep for long: engine/collector.py)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
