"""Sharded HTTP targets: requests routed by header, path segment or query to real upstreams."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devamb.cluster.hashring import HashRing
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.profile import ProfileError
from tests.conftest import EngineFactory, free_port, listen_url
from tests.upstreams import HttpUpstream

NAMES = ("a", "b", "c")


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, HttpUpstream]]:
    servers = {name: await HttpUpstream(name).start() for name in NAMES}
    yield servers
    for server in servers.values():
        await server.stop()


def profile(upstreams: dict[str, HttpUpstream], extra_target: str = "") -> str:
    named = ", ".join(f"{name}: {server.url}" for name, server in upstreams.items())
    listed = ", ".join(server.url for server in upstreams.values())
    return f"""
    version: 1
    services:
      api:
        listen: 0
        timeout: 2s
        target: by-header
        targets:
          by-header: {{shards: {{{named}}}, key: "header:X-User-Id"}}
          by-path: {{shards: {{{named}}}, key: "path:2"}}
          by-query: {{shards: {{{named}}}, key: "query:tenant"}}
          with-default: {{shards: {{{named}}}, key: "header:X-User-Id", default: b}}
          listed: {{shards: [{listed}], key: "header:X-User-Id"}}
          {extra_target}
    """


async def get(
    session: aiohttp.ClientSession, engine: Engine, path: str, target: str, **headers: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with session.get(
        listen_url(engine, "api") + path, headers={"X-Devamb-Target": target, **headers}
    ) as response:
        return response.status, await response.json()


async def test_routes_by_header_path_and_query_as_the_ring_says(
    make_engine: EngineFactory, upstreams: dict[str, HttpUpstream]
) -> None:
    engine = await make_engine(profile(upstreams))
    ring = HashRing(list(NAMES))
    seen = set()
    async with aiohttp.ClientSession() as session:
        for user in range(40):
            owner = ring.node_for(str(user).encode())
            seen.add(owner)
            for _ in range(2):  # the same key always lands on the same shard
                status, body = await get(session, engine, "/x", "by-header", **{
                    "X-User-Id": str(user)
                })
                assert status == 200 and body["upstream"] == owner
            status, body = await get(session, engine, f"/users/{user}/orders?x=1", "by-path")
            assert body["upstream"] == owner and body["path"] == f"/users/{user}/orders?x=1"
            status, body = await get(session, engine, f"/report?tenant={user}", "by-query")
            assert body["upstream"] == owner
    assert seen == set(NAMES)
    # Listed shards are named HOST:PORT on the ring.
    by_address = HashRing([f"127.0.0.1:{s.port}" for s in upstreams.values()])
    names = {f"127.0.0.1:{s.port}": name for name, s in upstreams.items()}
    async with aiohttp.ClientSession() as session:
        for user in range(20):
            status, body = await get(session, engine, "/x", "listed", **{"X-User-Id": str(user)})
            assert body["upstream"] == names[by_address.node_for(str(user))]
    listed = engine.services["api"].targets["listed"].details()["shards"]
    assert sorted(s["name"] for s in listed) == sorted(names)
    assert sum(s["requests"] for s in listed) == 20
    shards = engine.services["api"].targets["by-header"].details()["shards"]
    assert sum(s["requests"] for s in shards) == 80
    assert abs(sum(s["share"] for s in shards) - 1) < 0.01


async def test_a_request_without_the_key_is_a_400_naming_it(
    make_engine: EngineFactory, upstreams: dict[str, HttpUpstream]
) -> None:
    engine = await make_engine(profile(upstreams))
    async with aiohttp.ClientSession() as session:
        status, body = await get(session, engine, "/x", "by-header")
        assert status == 400 and body["error"] == "missing-shard-key"
        assert "header X-User-Id" in body["reason"]
        status, body = await get(session, engine, "/x", "by-header", **{"X-User-Id": ""})
        assert status == 400
        status, body = await get(session, engine, "/users", "by-path")
        assert status == 400 and "path segment 2" in body["reason"]
        status, body = await get(session, engine, "/r?other=1", "by-query")
        assert status == 400 and "query parameter tenant" in body["reason"]
        status, body = await get(session, engine, "/x", "with-default")
        assert status == 200 and body["upstream"] == "b"


async def test_an_unreachable_shard_is_ejected_and_its_keys_rehash(
    make_engine: EngineFactory, upstreams: dict[str, HttpUpstream]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    extra = (f'flaky: {{shards: {{a: {upstreams["a"].url}, dead: {dead}}}, '
             f'key: "header:K", eject_after: 2, eject_for: 30s}}')
    engine = await make_engine(profile(upstreams, extra))
    ring = HashRing(["a", "dead"])
    key = next(str(i) for i in range(100) if ring.node_for(str(i)) == "dead")
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            status, body = await get(session, engine, "/x", "flaky", K=key)
            assert status == 502 and body["reason"].startswith(f"shard dead ({dead}): ")
        status, body = await get(session, engine, "/x", "flaky", K=key)
        assert status == 200 and body["upstream"] == "a"
    target = engine.services["api"].targets["flaky"]
    shards = {s["name"]: s for s in target.details()["shards"]}
    assert shards["dead"]["state"] == "ejected" and shards["dead"]["errors"] == 2
    assert target.state == "degraded"


def problems(tmp_path: Path, targets: str, protocol: str = "http") -> list[str]:
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        services:
          svc:
            listen: 0
            protocol: {protocol}
            targets:
        """) + textwrap.indent(textwrap.dedent(targets), " " * 6))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("targets", "protocol", "expected"),
    [
        ("t: {shards: [http://h:1], key: redis}", "http",
         "'redis' is not a shard key for an http service: expected header:NAME, path:N"),
        ("t: {shards: [http://h:1], key: 'path:0'}", "http", "is not a shard key"),
        ("t: {shards: [tcp://h:1], key: 'header:X'}", "tcp",
         "'header:X' is not a shard key for a tcp service: expected redis"),
        ("t: {shards: [http://h:1]}", "http", "missing required key 'key'"),
        ("t: {shards: [], key: 'header:X'}", "http", "expected at least one shard"),
        ("t: {shards: 3, key: 'header:X'}", "http", "expected a list of URLs or a mapping"),
        ("t: {shards: [http://h:1, http://h:1], key: 'header:X'}", "http",
         "shard h:1 is listed twice"),
        ("t: {shards: [http://h:1], key: redis}", "tcp", "is not a URL a tcp service can use"),
        ("t: {shards: [http://h:1], key: 'header:X', default: z}", "http",
         "'z' is not one of h:1"),
        ("t: {shards: [tcp://h:1], key: redis, default: h:1}", "tcp",
         "default applies to http services"),
        ("t: {shards: [http://h:1], key: 'header:X', auth: pw}", "http",
         "auth applies to key: redis shards"),
        ("t: {shards: [tcp://h:1], key: redis, eject_for: 5s}", "tcp",
         "eject_for needs eject_after"),
        ("t: {shards: [tcp://h:1], key: redis, eject_after: 0}", "tcp", "out of range"),
        ("t: {shards: [tcp://h:1], key: redis, ejectafter: 2}", "tcp",
         "unknown key 'ejectafter' (did you mean 'eject_after'?)"),
    ],
)
def test_profile_problems_are_positioned(
    tmp_path: Path, targets: str, protocol: str, expected: str
) -> None:
    found = problems(tmp_path, targets, protocol)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "devamb.yaml") + ":") for p in found)


def test_describe_and_named_shards(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        services:
          cache:
            listen: 0
            protocol: tcp
            targets:
              sharded:
                shards: {one: "tcp://127.0.0.1:7001", two: "tcp://127.0.0.1:7002"}
                key: redis
                eject_after: 3
                auth: ${PW:-secret}
        """))
    spec = load_profile(path).services["cache"].targets["sharded"]
    assert spec.describe() == "2 shards by redis: tcp://127.0.0.1:7001, tcp://127.0.0.1:7002"
    assert [s.name for s in spec.shards] == ["one", "two"]  # type: ignore[attr-defined]
    assert spec.eject_for == 30 and spec.auth == "secret"  # type: ignore[attr-defined]
    assert "secret" not in repr(spec)
