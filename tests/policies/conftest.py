"""Fixtures for policy tests: a fake clock and engines built with it, a flaky upstream."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from devamb.engine.core import Engine
from devamb.faults.base import FaultContext
from tests.conftest import EngineFactory
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
def engine_for(make_engine: EngineFactory) -> Callable[..., Awaitable[Engine]]:
    """`await engine_for(text, clock=None)`: an engine whose faults and policies sleep and read
    time on `clock` (a new Clock by default), with seeded randomness."""

    async def make(text: str, clock: Clock | None = None) -> Engine:
        clock = clock or Clock()
        ctx = FaultContext(rng=random.Random(7), sleep=clock.sleep, clock=clock)
        return await make_engine(text, fault_context=ctx)

    return make
