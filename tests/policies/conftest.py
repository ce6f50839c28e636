"""Fixtures for policy tests: a fake clock and engines built with it, a flaky upstream."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.faults.base import FaultContext
from tests.policies.flaky import FlakyUpstream


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def flaky():
    server = await FlakyUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def engine_for(tmp_path: Path):
    engines: list[Engine] = []

    async def make(text: str, clock: Clock | None = None) -> Engine:
        (tmp_path / "devamb.yaml").write_text(textwrap.dedent(text))
        clock = clock or Clock()
        ctx = FaultContext(rng=random.Random(7), sleep=clock.sleep, clock=clock)
        engine = Engine(load_profile(tmp_path / "devamb.yaml"), fault_context=ctx)
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()
