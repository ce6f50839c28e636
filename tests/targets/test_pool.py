"""Pool targets (`endpoints:`): profile forms, balancing through a real engine, 503 when nothing
is routable, status details, TCP pools and DNS re-resolution."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from devamb.cluster.dns import PinnedPool
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.targets.pool import PoolTarget, PoolTargetSpec
from tests.conftest import EngineFactory, Notices, listen_url, problems
from tests.replicas import Replica, eventually
from tests.upstreams import TcpUpstream


def pool_profile(endpoints: list[str], extra: str = "", protocol: str = "http") -> str:
    listed = ", ".join(endpoints)
    return f"""\
version: 1
services:
  api:
    listen: 0
    protocol: {protocol}
    timeout: 2s
    target: replicas
    targets:
      replicas:
        endpoints: [{listed}]
{textwrap.indent(textwrap.dedent(extra), " " * 8)}
"""


def pool(engine: Engine, service: str = "api", name: str = "replicas") -> PoolTarget:
    target = engine.services[service].targets[name]
    assert isinstance(target, PoolTarget)
    return target


async def get(url: str, n: int = 1, headers: dict[str, str] | None = None) -> list[str]:
    async with aiohttp.ClientSession() as session:
        out = []
        for _ in range(n):
            async with session.get(url, headers=headers) as response:
                out.append(await response.text())
        return out


# -- profile ---------------------------------------------------------------------------------


def test_a_full_pool_entry_parses(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(pool_profile(
        ["http://127.0.0.1:8001", "https://api.example.com/v1"],
        """\
        balance: hash
        hash_on: cookie:session
        health: {path: /healthz, interval: 2s, timeout: 500ms, healthy: 1, unhealthy: 2}
        outlier: {consecutive_failures: 3, eject_for: 10s, max_ejected: 34%}
        dns_ttl: 5s
        headers: {X-Team: payments}
        tls: {verify: false}
        """,
    ))
    spec = load_profile(path, environ={}).services["api"].targets["replicas"]
    assert isinstance(spec, PoolTargetSpec)
    assert spec.kind == "endpoints"
    assert [w for _, w in spec.endpoints] == ["http://127.0.0.1:8001", "https://api.example.com/v1"]
    assert spec.balance.policy == "hash" and str(spec.balance.hash_on) == "cookie:session"
    assert spec.health is not None and (spec.health.interval, spec.health.timeout) == (2.0, 0.5)
    assert spec.outlier is not None and spec.outlier.max_ejected == pytest.approx(0.34)
    assert spec.dns_ttl == 5.0 and spec.headers == {"X-Team": "payments"} and not spec.tls_verify
    assert spec.describe() == "http://127.0.0.1:8001, https://api.example.com/v1 (hash)"


@pytest.mark.parametrize(
    ("endpoints", "extra", "protocol", "expected"),
    [
        (["http://a:1"], "balance: fastest", "http",
         "devamb.yaml:11:18: services.api.targets.replicas.balance: 'fastest' is not one of "
         "round_robin, least_requests, random, hash"),
        (["http://a:1"], "balance: hash", "http",
         "devamb.yaml:11:18: services.api.targets.replicas.balance: 'balance: hash' needs "
         "hash_on: header:NAME, cookie:NAME, client_ip or path"),
        (["http://a:1"], "balance: hash\nhash_on: body", "http",
         "devamb.yaml:12:18: services.api.targets.replicas.hash_on: 'body' is not a request "
         "key; expected header:NAME, cookie:NAME, client_ip, path"),
        (["tcp://a:1"], "balance: least_requests", "tcp",
         "devamb.yaml:11:18: services.api.targets.replicas.balance: 'least_requests' needs HTTP "
         "requests; a tcp pool balances with round_robin or random"),
        (["http://a:1", "http://a:1"], "", "http",
         "devamb.yaml:10:33: services.api.targets.replicas.endpoints.1: 'http://a:1' is listed "
         "twice"),
        (["tcp://a:1"], "", "http",
         "devamb.yaml:10:21: services.api.targets.replicas.endpoints.0: 'tcp://a:1' is not a URL "
         "a http service can use: expected http:// or https://"),
        (["http://a:1"], "health: {interval: 1s}", "http",
         "devamb.yaml:11:17: services.api.targets.replicas.health: missing required key 'path'"),
        (["tcp://a:1"], "health: {path: /x}", "tcp",
         "devamb.yaml:11:24: services.api.targets.replicas.health.path: a tcp service checks its "
         "endpoints by connecting; 'path' applies to http"),
        (["tcp://a:1"], "outlier: {}", "tcp",
         "devamb.yaml:11:9: services.api.targets.replicas.outlier: outlier ejection needs HTTP "
         "exchanges; a tcp pool uses health: {interval: ...}"),
        (["http://a:1"], "outlier: {max_ejected: 150%}", "http",
         "devamb.yaml:11:32: services.api.targets.replicas.outlier.max_ejected: '150%' is not a "
         "percentage from 0% to 100%"),
    ],
)
def test_bad_pools_are_reported_precisely(
    tmp_path: Path, endpoints: list[str], extra: str, protocol: str, expected: str
) -> None:
    assert problems(tmp_path, pool_profile(endpoints, extra, protocol)) == [expected]


def test_an_empty_endpoint_list_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, pool_profile([]))
    assert found == [
        "devamb.yaml:10:20: services.api.targets.replicas.endpoints: expected a list of "
        "endpoint URLs, with at least one"
    ]


# -- routing ---------------------------------------------------------------------------------


async def test_round_robin_spreads_evenly_and_records_the_endpoint(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    engine = await make_engine(pool_profile([r.url for r in replicas]))
    answers = await get(listen_url(engine, "api") + "/x", 30)
    assert Counter(answers) == {"r0": 10, "r1": 10, "r2": 10}
    urls = {e.url for e in engine.store.all()}
    assert urls == {f"{r.url}/x" for r in replicas}
    status = await engine.status()
    target = status["services"][0]["targets"][0]
    assert target["kind"] == "endpoints" and target["state"] == "ready"
    details = target["details"]
    assert [e["requests"] for e in details["endpoints"]] == [10, 10, 10]
    assert [e["share"] for e in details["endpoints"]] == [pytest.approx(1 / 3, abs=1e-3)] * 3
    assert {e["state"] for e in details["endpoints"]} == {"unknown"}  # no health checks
    assert details["reason"] is None


async def test_path_prefixes_and_headers_apply_to_every_endpoint(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    engine = await make_engine(
        pool_profile([f"{r.url}/v1" for r in replicas[:2]], "headers: {X-Team: pay}")
    )
    await get(listen_url(engine, "api") + "/charge?a=1", 2)
    seen = [r.seen[-1] for r in replicas[:2]]
    assert [s.path_qs for s in seen] == ["/v1/charge?a=1"] * 2
    assert all(s.headers["X-Team"] == "pay" for s in seen)


async def test_a_pool_with_nothing_routable_answers_503_saying_why(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    replicas[0].status = 503  # passes its health checks, fails its exchanges
    replicas[1].healthy = False
    engine = await make_engine(pool_profile(
        [r.url for r in replicas[:2]],
        """\
        health: {path: /healthz, interval: 50ms, unhealthy: 1}
        outlier: {consecutive_failures: 1, eject_for: 30s, max_ejected: 100%}
        """,
    ))
    target = pool(engine)
    await eventually(lambda: target.endpoints.items[1].health == "unhealthy", what="r1 unhealthy")
    async with aiohttp.ClientSession() as session:
        url = listen_url(engine, "api") + "/"
        async with session.get(url) as response:  # r0 answers 503, and it is ejected
            assert response.status == 503 and await response.text() == "r0"
        async with session.get(url) as response:
            body = await response.json()
            assert response.status == 503
    assert body["error"] == "target-unavailable"
    assert body["reason"] == (
        "no healthy endpoint in target 'replicas' (1 ejected, 1 failing health checks)"
    )
    assert target.state == "unavailable"
    assert target.details()["reason"] == body["reason"]


async def test_a_dead_endpoint_costs_one_failure_then_traffic_moves_on(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    await replicas[1].die()
    engine = await make_engine(pool_profile(
        [r.url for r in replicas],
        "outlier: {consecutive_failures: 1, eject_for: 30s}",
    ))
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(9):
            async with session.get(listen_url(engine, "api") + "/") as response:
                statuses.append(response.status)
    assert statuses.count(502) == 1 and statuses.count(200) == 8
    details = pool(engine).details()["endpoints"]
    assert [e["state"] for e in details] == ["unknown", "ejected", "unknown"]
    assert details[1]["failures"] == 1 and details[1]["ejected_for_s"] > 29


async def test_status_json_carries_the_pool_details(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    engine = await make_engine(pool_profile(
        [r.url for r in replicas[:2]], "health: {path: /healthz, interval: 50ms}"
    ))
    await eventually(lambda: pool(engine).state == "ready" and all(
        e.health == "healthy" for e in pool(engine).endpoints))
    status = await engine.status()
    details = status["services"][0]["targets"][0]["details"]
    assert details["balance"] == "round_robin"
    assert details["health"]["path"] == "/healthz"
    assert details["routable"] == 2
    keys = {"endpoint", "address", "state", "health", "ejected", "in_flight", "requests", "share"}
    assert keys <= set(details["endpoints"][0])
    assert details["endpoints"][0]["address"] == f"127.0.0.1:{replicas[0].port}"


# -- TCP -------------------------------------------------------------------------------------


def _naming(name: str):  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    return handler


async def _read_tcp(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = await reader.read()
    writer.close()
    return data


async def test_tcp_pools_hand_out_endpoints_and_skip_dead_ones(make_engine: EngineFactory) -> None:
    ups = [await TcpUpstream(_naming(f"t{i}")).start() for i in range(3)]
    try:
        engine = await make_engine(pool_profile(
            [f"tcp://127.0.0.1:{u.port}" for u in ups],
            "health: {interval: 50ms, timeout: 1s}",
            protocol="tcp",
        ))
        port = engine.services["api"].bound[1]  # type: ignore[index]
        got = Counter([await _read_tcp(port) for _ in range(6)])
        assert got == {b"t0": 2, b"t1": 2, b"t2": 2}
        await ups[1].stop()
        target = pool(engine)
        await eventually(lambda: target.endpoints.items[1].health == "unhealthy",
                         what="t1 fails its connect check")
        assert target.endpoints.items[1].health_reason == "cannot connect: connection refused"
        got = Counter([await _read_tcp(port) for _ in range(6)])
        assert got == {b"t0": 3, b"t2": 3}
        assert target.state == "degraded"
    finally:
        for u in ups:
            await u.stop()


# -- DNS -------------------------------------------------------------------------------------


async def test_names_are_re_resolved_and_the_last_good_answer_is_kept(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    engine = await make_engine(pool_profile(
        [f"http://localhost:{replicas[0].port}"], "dns_ttl: 30s"
    ))
    target = pool(engine)
    endpoint = target.endpoints.items[0]
    assert endpoint.address is not None and endpoint.address[1] == replicas[0].port
    assert isinstance(endpoint.pool, PinnedPool)
    assert await get(listen_url(engine, "api") + "/") == ["r0"]
    notices = Notices(engine)

    answers: list[tuple[str, int] | OSError] = [OSError("no such host"), ("127.0.0.2", 1)]

    async def fake(host: str, port: int) -> tuple[str, int]:
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer[0], port

    target.dns.resolver = fake
    old_address, old_pool = endpoint.address, endpoint.pool
    await target.dns.refresh()  # fails: the last answer stays
    assert endpoint.address == old_address and endpoint.pool is old_pool
    await eventually(lambda: bool(notices.saying("cannot resolve")), what="the notice")
    level, message = notices.seen[-1]
    assert level == "warning" and "cannot resolve localhost: no such host" in message
    await target.dns.refresh()  # a new answer: new connections go there
    assert endpoint.address == ("127.0.0.2", replicas[0].port)
    assert endpoint.pool is not old_pool and old_pool.retired  # type: ignore[union-attr]
    await eventually(lambda: bool(notices.saying("now resolves")), what="the notice")
    assert "localhost now resolves to 127.0.0.2" in notices.seen[-1][1]
    # Host header and exchange URL keep the name as written
    assert engine.store.all()[-1].url == f"http://localhost:{replicas[0].port}/"


async def test_the_pool_state_combines_reach_health_and_ejection(
    make_engine: EngineFactory,
) -> None:
    """Each endpoint is down (not routable, or its last connection failed), unknown (never
    connected to) or up; the pool's state is made of those, in a split's words."""
    engine = await make_engine(pool_profile(
        ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"]
    ))
    target = pool(engine)
    a, b, c = target.endpoints
    assert target.state == "unknown"
    for endpoint in (a, b, c):
        endpoint.reach.observe(None)
    assert target.state == "ready"
    refused = ConnectionRefusedError(111, "Connect call failed")
    c.reach.observe(refused)
    assert target.state == "degraded"
    b.health = "unhealthy"  # reachable, but its health check fails: not routable
    target.endpoints.changed()
    assert target.state == "degraded"
    a.reach.observe(refused)
    assert target.state == "refused"  # every routable endpoint refuses: what a URL target says
    a.reach.observe(TimeoutError("no connection within 3s"))
    assert target.state == "unreachable"  # they fail differently
    a.ejected_until, b.health = 1e18, "healthy"
    a.reach.observe(None)
    target.endpoints.changed()
    assert target.state == "degraded"  # b is back; a is reachable, but ejected: not routable
    b.health = "unhealthy"
    c.ejected_until = 1e18
    target.endpoints.changed()
    assert target.state == "unavailable"  # nothing routable, whatever the connections said
