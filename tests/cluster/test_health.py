"""Active health checks: thresholds, the HTTP and TCP checks against real servers, and a pool
that takes an endpoint out and brings it back."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from devamb.cluster.endpoint import Endpoint
from devamb.cluster.health import HealthChecker, HealthSpec, check_http, check_tcp
from devamb.targets.pool import PoolTarget
from tests.conftest import EngineFactory, Notices, free_port, listen_url
from tests.replicas import Replica, eventually


def test_the_first_check_decides_then_thresholds_apply() -> None:
    flips: list[str] = []
    checker = HealthChecker(HealthSpec("/h", healthy=2, unhealthy=3),
                            lambda e: flips.append(e.health))
    ep = Endpoint.from_url("http://127.0.0.1:1")
    checker.record(ep, None)
    assert ep.health == "healthy" and flips == ["healthy"]
    checker.record(ep, "boom")
    checker.record(ep, "boom")
    assert ep.health == "healthy" and ep.health_reason == "boom" and ep.routable
    checker.record(ep, None)  # a pass resets the count of failures
    checker.record(ep, "a")
    checker.record(ep, "b")
    checker.record(ep, "c")
    assert ep.health == "unhealthy" and ep.health_reason == "c" and not ep.routable
    checker.record(ep, None)
    assert ep.health == "unhealthy"
    checker.record(ep, None)
    assert ep.health == "healthy" and ep.health_reason is None
    assert flips == ["healthy", "unhealthy", "healthy"]


def test_an_endpoint_failing_its_first_check_is_out_at_once() -> None:
    checker = HealthChecker(HealthSpec("/h"), lambda e: None)
    ep = Endpoint.from_url("http://127.0.0.1:1")
    checker.record(ep, "refused")
    assert ep.health == "unhealthy"


async def test_http_checks_against_a_real_server(replicas: list[Replica]) -> None:
    ep = Endpoint.from_url(replicas[0].url)
    assert await check_http(ep, "/healthz", 1.0, None) is None
    replicas[0].healthy = False
    assert await check_http(ep, "/healthz", 1.0, None) == "GET /healthz answered 500"
    await replicas[0].die()
    assert await check_http(ep, "/healthz", 1.0, None) == "GET /healthz: connection refused"
    assert await check_tcp(ep, 1.0) == "cannot connect: connection refused"


async def test_a_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ep = Endpoint.from_url(f"http://127.0.0.1:{port}")
        failure = await check_http(ep, "/healthz", 0.1, None)
        assert failure == "no answer to GET /healthz within 0.1s"
        assert await check_tcp(ep, 1.0) is None  # it does accept connections
    finally:
        server.close()


async def test_not_http_is_a_failure() -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+PONG\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ep = Endpoint.from_url(f"http://127.0.0.1:{port}")
        assert await check_http(ep, "/healthz", 1.0, None) == "GET /healthz: not an HTTP response"
    finally:
        server.close()


async def test_checks_take_an_endpoint_out_and_bring_it_back(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    listed = ", ".join(r.url for r in replicas)
    engine = await make_engine(f"""\
        version: 1
        services:
          api:
            listen: 0
            targets:
              replicas:
                endpoints: [{listed}]
                health: {{path: /healthz, interval: 50ms, timeout: 1s, healthy: 2, unhealthy: 2}}
        """)
    target = engine.services["api"].targets["replicas"]
    assert isinstance(target, PoolTarget)
    notices = Notices(engine)
    r1 = target.endpoints.items[1]
    await eventually(lambda: all(e.health == "healthy" for e in target.endpoints), what="healthy")
    assert target.state == "ready"

    replicas[1].healthy = False
    await eventually(lambda: r1.health == "unhealthy", what="r1 taken out")
    assert target.state == "degraded"
    taken_out = (
        "warning",
        f"api/replicas: {replicas[1].url} fails health checks (GET /healthz answered 500); "
        "2 of 3 endpoints routable",
    )
    await eventually(lambda: notices.last() == taken_out, what="the notice")
    url = listen_url(engine, "api") + "/"
    async with aiohttp.ClientSession() as session:
        answers = Counter()
        for _ in range(20):
            async with session.get(url) as response:
                answers[await response.text()] += 1
    assert answers == {"r0": 10, "r2": 10}

    replicas[1].healthy = True
    await eventually(lambda: r1.health == "healthy", what="r1 back")
    back = ("info", f"api/replicas: {replicas[1].url} passes health checks again")
    await eventually(lambda: notices.last() == back, what="the notice")
    assert target.state == "ready"
    assert replicas[1].health_checks >= 4


async def test_health_checks_stop_when_the_engine_stops(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    engine = await make_engine(f"""\
        version: 1
        services:
          api:
            listen: 0
            targets:
              replicas:
                endpoints: [{replicas[0].url}]
                health: {{path: /healthz, interval: 20ms}}
        """)
    await eventually(lambda: replicas[0].health_checks >= 2, what="checks run")
    await engine.stop()
    count = replicas[0].health_checks
    await asyncio.sleep(0.1)
    assert replicas[0].health_checks == count


async def test_a_tcp_pool_is_checked_by_connecting(make_engine: EngineFactory) -> None:
    port = free_port()  # nothing listens there yet
    engine = await make_engine(f"""\
        version: 1
        services:
          cache:
            listen: 0
            protocol: tcp
            targets:
              pool:
                endpoints: ["tcp://127.0.0.1:{port}"]
                health: {{interval: 50ms, healthy: 1}}
        """)
    target = engine.services["cache"].targets["pool"]
    assert isinstance(target, PoolTarget)
    await eventually(lambda: target.state == "unavailable", what="nothing listens")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        await eventually(lambda: target.state == "ready", what="the listener is noticed")
    finally:
        server.close()
