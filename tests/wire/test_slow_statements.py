"""The slow-statement view against real servers: `devamb top` on a postgres service (psycopg
through the real command's engine) and the control route on a redis service (redis-py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis.asyncio

from devamb.control.client import ControlClient
from devamb.control.protocol import NotFound
from devamb.control.server import ControlServer
from tests.conftest import EngineFactory, devamb
from tests.targets.shards.real_redis import RedisServer
from tests.wire.pg import Cluster

PG_PROFILE = """\
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    targets:
      a: tcp://127.0.0.1:{port}
"""
REDIS_PROFILE = """
version: 1
services:
  cache:
    listen: 0
    protocol: redis
    targets:
      a: tcp://127.0.0.1:{port}
"""


async def _recorded(tmp_path: Path, want: int) -> None:
    for _ in range(200):
        rc, out, _ = await devamb("traffic", "--json", "-n", "500", "--filter", "~sql .",
                                  cwd=tmp_path)
        if rc == 0 and len(out.splitlines()) >= want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {want} statements recorded")


async def test_devamb_top_lists_the_slowest_statements(tmp_path: Path, pg: Cluster) -> None:
    (tmp_path / "devamb.yaml").write_text(PG_PROFILE.format(port=pg.port))
    rc, _, err = await devamb("up", "--detach", cwd=tmp_path)
    assert rc == 0, err
    try:
        rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
        [db] = [s for s in json.loads(out)["services"] if s["name"] == "db"]
        port = int(db["listen"].rsplit(":", 1)[1])
        async with await psycopg.AsyncConnection.connect(Cluster.dsn_at(port),
                                                         autocommit=True) as conn:
            for n in range(5):
                await conn.execute(f"SELECT {n} + 1 AS x WHERE 'a{n}' <> 'b'")
            await conn.execute("SELECT pg_sleep(0.2)")
            await conn.execute("SELECT pg_sleep(0.01)")
            await conn.execute("SELECT * FROM pg_class WHERE oid IN (1, 2, 3)")
            with pytest.raises(psycopg.errors.DivisionByZero):
                await conn.execute("SELECT 1 / 0")
        await _recorded(tmp_path, 9)
        rc, out, err = await devamb("top", "db", "--json", cwd=tmp_path)
        assert rc == 0, err
        view = json.loads(out)
        assert view["service"] == "db" and view["statements"] >= 9
        by_form = {row["statement"]: row for row in view["slowest"]}
        first = view["slowest"][0]
        assert first["statement"] == "SELECT pg_sleep(?)" and first["count"] == 2
        assert first["p99_ms"] >= 200 and first["max_ms"] == first["p99_ms"]
        assert first["p50_ms"] < first["p99_ms"]
        assert by_form["SELECT ? + ? AS x WHERE ? <> ?"]["count"] == 5
        assert by_form["SELECT * FROM pg_class WHERE oid IN (?)"]["count"] == 1
        assert by_form["SELECT ? / ?"]["errors"] == 1
        rc, out, err = await devamb("top", "db", "-n", "2", cwd=tmp_path)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("db: ") and "the 2 slowest by p99" in lines[0]
        assert lines[1].split() == ["STATEMENT", "COUNT", "ERR", "P50", "P99", "MAX"]
        assert lines[2].startswith("SELECT pg_sleep(?)") and len(lines) == 4
        rc, _, err = await devamb("top", "nope", cwd=tmp_path)
        assert rc != 0 and "no service 'nope'" in err
    finally:
        await devamb("down", cwd=tmp_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-slow"), None).start()
    yield server
    server.kill()


async def test_the_route_groups_redis_commands_by_key_pattern(
    make_engine: EngineFactory, server: RedisServer, tmp_path: Path
) -> None:
    engine = await make_engine(REDIS_PROFILE.format(port=server.port))
    bound = engine.services["cache"].bound
    assert bound is not None
    r = redis.asyncio.Redis(port=bound[1], protocol=2)
    try:
        for n in range(4):
            await r.set(f"user:{n}", "x")
            await r.get(f"user:{n}")
        await r.blpop(["queue:7"], timeout=0.2)
    finally:
        await r.aclose()
    for _ in range(200):
        view = await engine.slow_statements("cache", 10)
        if view["statements"] >= 9:
            break
        await asyncio.sleep(0.05)
    forms = {row["statement"]: row for row in view["slowest"]}
    assert view["slowest"][0]["statement"] == "BLPOP queue:?"
    assert view["slowest"][0]["p50_ms"] >= 150
    assert forms["SET user:?"]["count"] == 4 and forms["GET user:?"]["count"] == 4
    assert (await engine.slow_statements("cache", 1))["slowest"][0]["statement"] == "BLPOP queue:?"
    with pytest.raises(NotFound):
        await engine.slow_statements("nope")
    control = ControlServer(engine, tmp_path / ".devamb" / "engine.sock")  # the route
    await control.start()
    client = ControlClient(control.socket_path)
    try:
        view = await client.slow_statements("cache", 2)
        assert view["slowest"][0]["statement"] == "BLPOP queue:?"
        assert len(view["slowest"]) == 2
        with pytest.raises(NotFound):
            await client.slow_statements("nope")
    finally:
        await client.close()
        await control.stop()
