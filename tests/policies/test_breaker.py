"""The circuit breaker: transitions on an injected clock, and through the real proxy."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from devamb.faults.base import FaultContext
from devamb.policies.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSpec, CircuitBreaker, Overloaded
from tests.conftest import listen_url
from tests.policies.conftest import Clock
from tests.policies.flaky import FlakyUpstream


def _breaker(clock: Clock, **kwargs) -> tuple[CircuitBreaker, list[str]]:  # type: ignore[no-untyped-def]
    changes: list[str] = []
    spec = BreakerSpec(**kwargs)
    return CircuitBreaker(
        spec, FaultContext(clock=clock), lambda s, why: changes.append(s)
    ), changes


def test_transitions() -> None:
    clock = Clock()
    breaker, changes = _breaker(clock, failures=3, window=10, open_for=5, half_open_requests=1)
    for _ in range(2):
        breaker.record(False)
    assert breaker.state == CLOSED
    clock.now = 1
    breaker.record(False)
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 6.5
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # only one trial
    breaker.record(False)
    assert breaker.state == OPEN
    clock.now = 12
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == CLOSED and changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_an_abandoned_trial_frees_its_slot() -> None:
    """A half-open trial whose client left (or stalled its upload) decides nothing; without
    giving its slot back the breaker would refuse every request from then on."""
    clock = Clock()
    breaker, _ = _breaker(clock, failures=1, window=10, open_for=5, half_open_requests=1)
    breaker.record(False)
    clock.now = 6
    assert breaker.allow() and breaker.state == HALF_OPEN
    breaker.abandon()
    assert breaker.allow()  # the next request is the trial
    breaker.record(True)
    assert breaker.state == CLOSED


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker, _ = _breaker(clock, failures=2, window=1)
    breaker.record(False)
    clock.now = 5
    breaker.record(False)
    assert breaker.state == CLOSED


async def test_thresholds_reject_beyond_max_requests_and_pending() -> None:
    breaker, _ = _breaker(Clock(), max_requests=1, max_pending=1)
    await breaker.acquire()
    waiter = asyncio.create_task(breaker.acquire())  # waits for the slot
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await breaker.acquire()
    await breaker.release()
    await asyncio.wait_for(waiter, 1)
    assert breaker.in_flight == 1


async def test_open_circuit_answers_at_once_through_the_proxy(engine_for, flaky) -> None:
    clock = Clock()
    engine = await engine_for(
        f"""
    services:
      api:
        listen: 0
        targets: {{up: "{flaky.url}"}}
        circuit_breaker: {{failures: 3, window: 10s, open_for: 5s}}
    """,
        clock,
    )
    flaky.default = "500"
    url = listen_url(engine, "api") + "/x"
    async with aiohttp.ClientSession() as client:
        for _ in range(3):
            assert (await client.get(url)).status == 500
        resp = await client.get(url)
        assert resp.status == 503 and resp.headers["x-devamb-error"] == "circuit-open"
        assert len(flaky.seen) == 3  # the open circuit kept the upstream out of it
        status = await engine.status()
        assert status["services"][0]["targets"][0]["breaker"]["state"] == "open"
        clock.now += 6
        flaky.default = "ok"
        assert (await client.get(url)).status == 200  # the trial succeeds: closed again
    assert engine.services["api"].policy.breakers["up"].state == CLOSED


async def test_overload_gives_503(engine_for) -> None:
    slow = await FlakyUpstream().start()
    slow.default = "slow"
    try:
        engine = await engine_for(f"""
        services:
          api:
            listen: 0
            targets: {{up: "{slow.url}"}}
            circuit_breaker: {{max_requests: 1, max_pending: 0}}
        """)
        url = listen_url(engine, "api") + "/x"
        async with aiohttp.ClientSession() as client:
            first = asyncio.create_task(client.get(url))
            while not slow.seen:
                await asyncio.sleep(0.01)
            resp = await client.get(url)
            assert resp.status == 503 and resp.headers["x-devamb-error"] == "overloaded"
            assert (await first).status == 200
    finally:
        await slow.stop()


async def test_a_trial_whose_client_leaves_does_not_wedge_the_breaker(engine_for, flaky) -> None:
    """The half-open trial's client hangs up before the answer: the next request is the trial,
    rather than every request getting `circuit-open` from then on."""
    clock = Clock()
    engine = await engine_for(
        f"""
    services:
      api:
        listen: 0
        targets: {{up: "{flaky.url}"}}
        circuit_breaker: {{failures: 1, window: 10s, open_for: 5s}}
    """,
        clock,
    )
    url = listen_url(engine, "api") + "/x"
    breaker = engine.services["api"].policy.breakers["up"]
    async with aiohttp.ClientSession() as client:
        flaky.default = "500"
        assert (await client.get(url)).status == 500
        assert breaker.state == OPEN
        clock.now += 6
        flaky.default = "slow"
        with pytest.raises(asyncio.TimeoutError):  # the trial's client gives up
            await client.get(url, timeout=aiohttp.ClientTimeout(total=0.3))
        for _ in range(100):
            if not engine.services["api"].policy.breakers["up"].in_flight:
                break
            await asyncio.sleep(0.02)
        flaky.default = "ok"
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
    assert breaker.state == CLOSED
