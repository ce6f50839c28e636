"""Target kinds on http2 and grpc services, with a real h2 client and real h2 upstreams: a pool
and a split pick per call (calls on ONE client connection spread), shards by a header, echo
answers calls itself (JSON for HTTP/2, the request's messages back for gRPC)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory, free_port
from tests.service.test_http2 import _call, _records
from tests.upstreams_h2 import H2Upstream

PROFILE = """
version: 1
services:
  h2:
    listen: 0
    protocol: {protocol}
    target: {active}
    timeout: 5s
    targets:
      a: http://127.0.0.1:{a}
      b: http://127.0.0.1:{b}
      pool: {{endpoints: ['http://127.0.0.1:{a}', 'http://127.0.0.1:{b}']}}
      hashed:
        endpoints: ['http://127.0.0.1:{a}', 'http://127.0.0.1:{b}']
        balance: hash
        hash_on: header:x-user
      half: {{split: {{a: 1, b: 1}}}}
      sticky: {{split: {{a: 1, b: 1}}, sticky: 'header:x-user'}}
      echoing: {{split: {{a: 1, loop: 1}}}}
      sharded: {{shards: {{one: 'http://127.0.0.1:{a}', two: 'http://127.0.0.1:{b}'}},
                key: 'header:x-tenant'}}
      loop: echo
      dead_pool: {{endpoints: ['http://127.0.0.1:{dead}']}}
"""


@pytest.fixture
async def ups() -> AsyncIterator[tuple[H2Upstream, H2Upstream]]:
    a = await H2Upstream("a").start()
    b = await H2Upstream("b").start()
    yield a, b
    await a.stop()
    await b.stop()


async def _engine(make_engine: EngineFactory, ups: tuple[H2Upstream, H2Upstream],
                  active: str = "pool", protocol: str = "http2") -> tuple[Engine, int]:
    a, b = ups
    engine = await make_engine(PROFILE.format(protocol=protocol, active=active, a=a.port,
                                              b=b.port, dead=free_port()))
    bound = engine.services["h2"].bound
    assert bound is not None
    return engine, bound[1]


async def _get(client: H2Client, port: int, target: str, *extra: tuple[bytes, bytes],
               body: bytes = b"") -> tuple[dict[str, str], bytes]:
    headers = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"http"),
               (b":authority", f"127.0.0.1:{port}".encode()), (b":path", b"/who?x=1"),
               (b"x-devamb-target", target.encode()), *extra]
    stream = await client.open(headers, end=not body)
    if body:
        await stream.send_data(body, end=True)
    got: dict[str, str] = {}
    data = bytearray()
    while True:
        item = await stream.next()
        if item.kind == "headers":
            got = {k.decode(): v.decode() for k, v in item.headers}
        elif item.kind == "data":
            data += item.data
            stream.ack(item.flow)
        elif item.kind in ("end", "trailers"):
            if item.kind == "trailers":
                got.update({k.decode(): v.decode() for k, v in item.headers})
                continue
            return got, bytes(data)
        else:
            raise AssertionError(f"stream reset: {item}")


async def test_a_pool_spreads_calls_on_one_client_connection(make_engine: EngineFactory,
                                                             ups) -> None:
    engine, port = await _engine(make_engine, ups)
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        heads = await asyncio.gather(*(_call(client, f"/n/{i}", port=port) for i in range(10)))
        seen = Counter(head["x-upstream"] for head, _, _ in heads)
        assert seen == {"a": 5, "b": 5}  # round robin, per call
        assert client._connection is not None and len(heads) == 10
        # hash on a header: one user always lands on the same endpoint
        owners = set()
        for _ in range(6):
            head, _ = await _get(client, port, "hashed", (b"x-user", b"ada"))
            owners.add(head["x-upstream"])
        assert len(owners) == 1
        # a pool whose only endpoint is down: a 502 naming the connection failure
        head, body = await _get(client, port, "dead_pool")
        assert head[":status"] == "502" and b"cannot connect" in body, body
    finally:
        client.close()
    a, b = ups
    assert a.connections == b.connections == 1  # the engine shares one connection each
    details = engine.services["h2"].targets["pool"].details()
    assert [e["requests"] for e in details["endpoints"]] == [5, 5]


async def test_a_split_picks_per_call_and_sticks_on_a_key(make_engine: EngineFactory,
                                                          ups) -> None:
    engine, port = await _engine(make_engine, ups, active="half")
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        seen: Counter[str] = Counter()
        for i in range(40):
            head, _, _ = await _call(client, f"/s/{i}", port=port)
            seen[head["x-upstream"]] += 1
        assert seen["a"] > 0 and seen["b"] > 0 and sum(seen.values()) == 40
        owners = set()
        for _ in range(8):
            head, _ = await _get(client, port, "sticky", (b"x-user", b"grace"))
            owners.add(head["x-upstream"])
        assert len(owners) == 1
        # a member that answers calls itself (echo) is served as such
        kinds = set()
        for _ in range(30):
            head, body = await _get(client, port, "echoing")
            kinds.add(head.get("x-upstream") or json.loads(body)["target"])
        assert kinds == {"a", "loop"}
    finally:
        client.close()
    records = await _records(engine, 78)  # oldest first
    assert {r.target for r in records[:40]} == {"half"}
    details = engine.services["h2"].targets["half"].details()
    assert sum(m["requests"] for m in details["members"]) == 40


async def test_shards_pick_by_header_per_call(make_engine: EngineFactory, ups) -> None:
    _, port = await _engine(make_engine, ups, active="sharded")
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        owners: dict[str, set[str]] = {}
        for tenant in ("t1", "t2", "t3", "t4", "t5", "t6") * 2:
            head, _ = await _get(client, port, "sharded", (b"x-tenant", tenant.encode()))
            owners.setdefault(tenant, set()).add(head["x-upstream"])
        assert all(len(v) == 1 for v in owners.values())
        assert {next(iter(v)) for v in owners.values()} == {"a", "b"}
        head, body = await _get(client, port, "sharded")
        assert head[":status"] == "400" and b"x-tenant" in body, body
    finally:
        client.close()


async def test_echo_answers_http2_calls(make_engine: EngineFactory, ups) -> None:
    engine, port = await _engine(make_engine, ups, active="loop")
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        head, body = await _get(client, port, "loop", (b"x-hello", b"world"), body=b"x" * 70000)
    finally:
        client.close()
    assert head[":status"] == "200" and head["content-type"] == "application/json"
    echoed = json.loads(body)
    assert echoed["method"] == "POST" and echoed["path"] == "/who"
    assert echoed["query"] == {"x": "1"} and echoed["body_size"] == 70000
    assert echoed["headers"]["x-hello"] == "world" and echoed["protocol"] == "http2"
    (record,) = await _records(engine, 1)
    assert (record.target, record.status, record.bytes_in) == ("loop", 200, 70000)
    assert record.protocol == "http2"


async def test_echo_answers_grpc_calls_with_their_request(make_engine: EngineFactory,
                                                          ups) -> None:
    _, port = await _engine(make_engine, ups, active="loop", protocol="grpc")

    def call() -> tuple[bytes, grpc.StatusCode]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            ping = channel.unary_unary("/test.Echo/Ping")
            reply, outcome = ping.with_call(b"hello there", timeout=10)
            return reply, outcome.code()

    reply, code = await asyncio.to_thread(call)
    assert reply == b"hello there" and code == grpc.StatusCode.OK


def test_what_http2_pools_splits_and_shards_cannot_do_is_refused_at_load(tmp_path) -> None:
    from tests.conftest import problems

    found = problems(tmp_path, """version: 1
services:
  h2:
    listen: 0
    protocol: grpc
    target: a
    targets:
      a: http://127.0.0.1:1
      p1: {endpoints: ['http://127.0.0.1:1'], balance: least_requests}
      p2: {endpoints: ['http://127.0.0.1:1'], outlier: {consecutive_failures: 2}}
      p3: {endpoints: ['http://127.0.0.1:1'], health: {path: /healthz}}
      p4: {endpoints: ['http://127.0.0.1:1'], balance: hash, hash_on: client_ip}
      s1: {split: {a: 1}, mirror: a}
      s2: {split: {a: 1}, sticky: client_ip}
""")
    assert found == [
        "devamb.yaml:9:56: services.h2.targets.p1.balance: 'least_requests' needs the end of "
        "each exchange; a grpc pool balances with round_robin or random or hash",
        "devamb.yaml:10:47: services.h2.targets.p2.outlier: outlier ejection needs HTTP "
        "exchanges; a grpc pool uses health: {interval: ...}",
        "devamb.yaml:11:62: services.h2.targets.p3.health.path: a grpc service checks its "
        "endpoints by connecting; 'path' applies to http",
        "devamb.yaml:12:71: services.h2.targets.p4.hash_on: HTTP/2 calls are routed by their "
        "request head, not by client_ip; expected header:NAME, cookie:NAME, path",
        "devamb.yaml:13:35: services.h2.targets.s1.mirror: mirroring copies HTTP/1.1 requests; "
        "a grpc split cannot (HTTP/2 calls are not mirrored yet)",
        "devamb.yaml:14:35: services.h2.targets.s2.sticky: HTTP/2 calls are routed by their "
        "request head, not by client_ip; expected header:NAME, cookie:NAME, path",
    ], found
