"""latency: before the upstream, on the first response byte, per TCP chunk; real delays too."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import aiohttp

from devamb.faults import latency
from devamb.faults.base import FaultContext
from tests.faults.conftest import SetupFactory, greet


def _fault(delay: float, jitter: float, distribution: str, seed: int = 7) -> latency.LatencyFault:
    ctx = FaultContext(rng=random.Random(seed))
    params = latency.Params(delay, jitter, distribution)
    return latency.LatencyFault(params, ctx, "downstream", "http")


def test_uniform_jitter_stays_within_its_bounds() -> None:
    fault = _fault(0.3, 0.1, "uniform")
    samples = [fault.sample() for _ in range(2000)]
    assert min(samples) >= 0.2 and max(samples) <= 0.4
    assert abs(statistics.mean(samples) - 0.3) < 0.01


def test_normal_and_lognormal_have_the_delay_as_mean_and_the_jitter_as_spread() -> None:
    for distribution in ("normal", "lognormal"):
        fault = _fault(0.3, 0.15, distribution)
        samples = [fault.sample() for _ in range(20000)]
        assert min(samples) >= 0.0
        assert abs(statistics.mean(samples) - 0.3) < 0.01, distribution
        spread = statistics.stdev(samples)
        assert abs(spread - 0.15) < 0.015, (distribution, spread)


def test_no_jitter_is_exactly_the_delay() -> None:
    assert {_fault(0.25, 0.0, "lognormal").sample() for _ in range(5)} == {0.25}


async def test_http_delay_before_the_upstream(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="slow", kind="latency", delay="300ms", jitter="100ms")
    async with aiohttp.ClientSession() as client:
        for _ in range(5):
            async with client.get(s.url + "/charge") as r:
                assert r.status == 200
                assert (await r.json())["path"] == "/charge"
    assert s.time is not None and len(s.time.slept) == 5
    assert all(0.2 <= d <= 0.4 for d in s.time.slept)
    assert len(set(s.time.slept)) > 1  # jittered
    assert len(s.http.seen) == 5
    assert [e.faults for e in await s.recorded(5)] == [["slow"]] * 5


async def test_http_delay_on_the_first_response_byte(setup: SetupFactory) -> None:
    s = await setup()
    seen_when_sleeping: list[int] = []
    sleep = s.time.sleep  # type: ignore[union-attr]

    async def watching(seconds: float) -> None:
        seen_when_sleeping.append(len(s.http.seen))
        await sleep(seconds)

    s.engine.fault_context.sleep = watching
    await s.add("api", name="late", kind="latency", delay="200ms", on="response")
    async with aiohttp.ClientSession() as client, client.get(s.url + "/x") as r:
        assert r.status == 200
    assert seen_when_sleeping == [1]  # the upstream had the request already
    assert s.time.slept == [0.2]  # type: ignore[union-attr]
    [record] = await s.recorded(1)
    assert record.faults == ["late"] and record.status == 200


async def test_http_latency_really_delays(setup: SetupFactory) -> None:
    s = await setup(fake=False)
    await s.add("api", name="slow", kind="latency", delay="300ms")
    async with aiohttp.ClientSession() as client:
        begin = time.monotonic()
        async with client.get(s.url + "/x") as r:
            await r.read()
        elapsed = time.monotonic() - begin
        assert 0.28 <= elapsed < 3.0
        await s.engine.set_fault("api", "slow", False)
        begin = time.monotonic()
        async with client.get(s.url + "/x") as r:
            await r.read()
        assert time.monotonic() - begin < 0.25
    first, second = await s.recorded(2)
    assert first.faults == ["slow"] and second.faults == []


async def test_header_driven_delay(setup: SetupFactory) -> None:
    s = await setup(header_faults=True)
    async with aiohttp.ClientSession() as client:
        async with client.get(s.url + "/x", headers={"x-devamb-fault-delay": "250"}) as r:
            assert r.status == 200
        async with client.get(s.url + "/y") as r:
            assert r.status == 200
    assert s.time.slept == [0.25]  # type: ignore[union-attr]
    first, second = await s.recorded(2)
    assert first.faults == ["header:latency"] and second.faults == []


async def test_header_delay_is_ignored_unless_the_service_allows_it(setup: SetupFactory) -> None:
    s = await setup()
    headers = {"x-devamb-fault-delay": "250"}
    async with aiohttp.ClientSession() as client, client.get(s.url + "/x", headers=headers) as r:
        assert r.status == 200
    assert s.time.slept == []  # type: ignore[union-attr]
    assert (await s.recorded(1))[0].faults == []


async def _echo_round_trips(port: int, messages: list[bytes]) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for message in messages:
        begin = time.monotonic()
        writer.write(message)
        assert await reader.readexactly(len(message)) == message
        times.append(time.monotonic() - begin)
    writer.close()
    return times


async def test_tcp_delay_per_chunk_in_each_direction(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("raw", name="lag", kind="latency", delay="100ms", direction="both")
    await _echo_round_trips(s.tcp_port, [b"one", b"two", b"three"])
    assert s.time is not None and s.time.slept == [0.1] * 6  # 3 chunks up, 3 chunks down


async def test_tcp_connection_records_the_latency(setup: SetupFactory) -> None:
    s = await setup(tcp_handler=greet(b"hello"))
    await s.add("raw", name="lag", kind="latency", delay="100ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    assert await reader.read() == b"hello"
    writer.close()
    [record] = await s.recorded(1)
    assert record.faults == ["lag"] and record.error is None
    assert s.time is not None and s.time.slept == [0.1]


async def test_tcp_delay_only_downstream_by_default(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("raw", name="lag", kind="latency", delay="100ms")
    await _echo_round_trips(s.tcp_port, [b"one", b"two"])
    assert s.time is not None and s.time.slept == [0.1] * 2


async def test_tcp_latency_really_delays(setup: SetupFactory) -> None:
    s = await setup(fake=False)
    await s.add("raw", name="lag", kind="latency", delay="200ms")
    times = await _echo_round_trips(s.tcp_port, [b"ping", b"pong"])
    assert all(0.18 <= t < 3.0 for t in times)
