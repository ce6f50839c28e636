"""The shared wrapper: probability (seeded), match, after, times, for (injected clock), order."""

from __future__ import annotations

import asyncio
import math
import random

import aiohttp

from devamb.faults.base import FaultContext
from devamb.faults.chain import FaultChain, FaultState
from devamb.faults.spec import parse_fault_json
from tests.faults.conftest import SetupFactory, raw_exchange


async def _statuses(url: str, n: int, **kwargs: object) -> list[int]:
    async with aiohttp.ClientSession() as client:
        out = []
        for _ in range(n):
            async with client.get(url, **kwargs) as r:  # type: ignore[arg-type]
                await r.read()
                out.append(r.status)
        return out


def _binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


async def test_probability_over_1000_requests(setup: SetupFactory) -> None:
    s = await setup(seed=1234)
    await s.add("api", name="flaky", kind="abort", status=503, probability=0.3)
    statuses = await _statuses(s.url + "/x", 1000)
    aborted = statuses.count(503)
    low, high = _binomial_bounds(1000, 0.3)
    assert low <= aborted <= high, aborted
    assert statuses.count(200) == 1000 - aborted == len(s.http.seen)
    records = await s.recorded(1000)
    assert sum(r.faults == ["flaky"] for r in records) == aborted
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["fired"] == aborted and fault["seen"] == 1000


async def test_the_same_seed_gives_the_same_requests_the_fault(setup: SetupFactory) -> None:
    runs = []
    for _ in range(2):
        s = await setup(seed=99)
        await s.add("api", name="flaky", kind="abort", probability=0.5)
        runs.append(await _statuses(s.url + "/x", 40))
    assert runs[0] == runs[1] and 0 < runs[0].count(503) < 40


async def test_probability_is_rolled_per_tcp_connection(setup: SetupFactory) -> None:
    s = await setup(seed=7)
    await s.add("raw", name="flaky", kind="down", probability=0.5)
    refused = 0
    for _ in range(200):
        received, error = await raw_exchange(s.tcp_port, b"ping", half_close=True)
        if isinstance(error, ConnectionResetError):
            refused += 1
        else:
            assert received == b"ping"
    low, high = _binomial_bounds(200, 0.5)
    assert low <= refused <= high, refused


async def test_match_on_method_path_and_header(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="m", kind="abort", status=418,
                match={"method": ["post", "PUT"], "path": "/charge*",
                       "header": {"X-Tenant": "acme-*"}})
    cases = [
        ("POST", "/charge/1", {"X-Tenant": "acme-eu"}, 418),
        ("put", "/charges", {"x-tenant": "acme-us"}, 418),
        ("GET", "/charge/1", {"X-Tenant": "acme-eu"}, 200),
        ("POST", "/refund", {"X-Tenant": "acme-eu"}, 200),
        ("POST", "/charge/1", {"X-Tenant": "other"}, 200),
        ("POST", "/charge/1", {}, 200),
    ]
    async with aiohttp.ClientSession() as client:
        for method, path, headers, status in cases:
            async with client.request(method, s.url + path, headers=headers) as r:
                assert r.status == status, (method, path, headers)
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["seen"] == 2 and fault["fired"] == 2  # only matching requests count


async def test_after_skips_the_first_matching_requests(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="late", kind="abort", after=2, match={"path": "/a"})
    async with aiohttp.ClientSession() as client:
        statuses = []
        for path in ["/a", "/b", "/a", "/b", "/a", "/a"]:
            async with client.get(s.url + path) as r:
                statuses.append(r.status)
    assert statuses == [200, 200, 200, 200, 503, 503]


async def test_times_fires_n_times_then_turns_itself_off(setup: SetupFactory) -> None:
    s = await setup()
    events = s.engine.bus.subscribe()
    await s.add("api", name="thrice", kind="abort", times=3, after=1)
    assert await _statuses(s.url + "/x", 6) == [200, 503, 503, 503, 200, 200]
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["enabled"] is False and fault["fired"] == 3
    notices = []
    while (event := await asyncio.wait_for(events.get(), 1)) is not None:
        if event.TYPE == "notice":
            notices.append(event.message)
            break
    events.close()
    assert notices == ["fault 'thrice' on 'api' turned off: it fired 3 times"]
    await s.engine.set_fault("api", "thrice", True)  # on again: three more
    assert await _statuses(s.url + "/x", 5) == [200, 503, 503, 503, 200]


async def test_for_turns_the_fault_off_with_the_injected_clock(setup: SetupFactory) -> None:
    s = await setup()
    assert s.time is not None
    await s.add("api", name="brief", kind="abort", **{"for": "30s"})
    assert await _statuses(s.url + "/x", 2) == [503, 503]
    s.time.advance(29.0)
    assert await _statuses(s.url + "/x", 1) == [503]
    s.time.advance(1.0)
    assert await _statuses(s.url + "/x", 2) == [200, 200]
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["enabled"] is False and fault["fired"] == 3


async def test_for_expires_without_traffic(setup: SetupFactory) -> None:
    s = await setup()
    assert s.time is not None
    await s.add("api", name="brief", kind="latency", delay="1s", **{"for": "10s"})
    s.time.advance(10.0)
    s.engine.services["api"].faults.tick()  # what the engine's ticker does twice a second
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["enabled"] is False


async def test_for_counts_from_turning_on(setup: SetupFactory) -> None:
    s = await setup()
    assert s.time is not None
    await s.add("api", name="brief", kind="abort", enabled=False, **{"for": "10s"})
    s.time.advance(100.0)
    assert await _statuses(s.url + "/x", 1) == [200]
    await s.engine.set_fault("api", "brief", True)
    s.time.advance(9.0)
    assert await _statuses(s.url + "/x", 1) == [503]
    s.time.advance(1.0)
    assert await _statuses(s.url + "/x", 1) == [200]


async def test_disabled_faults_never_fire_nor_count(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="off", kind="abort", enabled=False)
    assert await _statuses(s.url + "/x", 3) == [200, 200, 200]
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["seen"] == 0 and fault["fired"] == 0
    assert not s.engine.services["api"].faults.chain.armed


async def test_order_is_fixed_by_kind_not_by_definition(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="slow", kind="latency", delay="1s")
    await s.add("api", name="boom", kind="abort")
    assert await _statuses(s.url + "/x", 1) == [503]
    assert s.time is not None and s.time.slept == []  # abort answered before latency acted
    [record] = await s.recorded(1)
    assert record.faults == ["boom", "slow"]


def test_a_chain_sorts_its_faults_by_kind_order() -> None:
    ctx = FaultContext(rng=random.Random(1))
    specs = [
        parse_fault_json("c", {"kind": "slow_close", "delay": "1s"}, "tcp"),
        parse_fault_json("b", {"kind": "bandwidth", "rate": 100}, "tcp"),
        parse_fault_json("l", {"kind": "latency", "delay": "1s"}, "tcp"),
        parse_fault_json("d", {"kind": "down"}, "tcp"),
    ]
    chain = FaultChain(tuple(FaultState(s, ctx, "tcp", lambda *a: None) for s in specs))
    assert [s.spec.kind for s in chain.states] == ["down", "latency", "bandwidth", "slow_close"]
    plan = chain.roll(ctx)
    assert plan is not None and plan.names == ["d", "l", "b", "c"] and plan.refuses


def test_probability_of_a_bare_chain_over_1000_rolls() -> None:
    ctx = FaultContext(rng=random.Random(5))
    spec = parse_fault_json("p", {"kind": "latency", "delay": "1ms", "probability": 0.1}, "http")
    chain = FaultChain((FaultState(spec, ctx, "http", lambda *a: None),))
    fired = sum(chain.roll(ctx, ("GET", "/", {})) is not None for _ in range(1000))
    low, high = _binomial_bounds(1000, 0.1)
    assert low <= fired <= high
