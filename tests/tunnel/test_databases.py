"""The protocol-aware services through a real sshd: `protocol: postgres` (a throwaway
PostgreSQL cluster) and `protocol: redis` (a redis-server), each statement or command recorded
as through a local target, statement and command faults acting the same, results checked by
checksum, and a live switch between the local and the tunnelled target."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis.asyncio
import redis.exceptions

from devamb.engine.core import Engine
from devamb.inspect.exchange import Exchange
from devamb.tunnel.bastion import Bastion
from tests.conftest import EngineFactory
from tests.sshd import Sshd
from tests.targets.shards.real_redis import RedisServer
from tests.tunnel.conftest import bastion_yaml
from tests.wire.pg import Cluster, pg_bin, start_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (Debian package postgresql; .ci/run)")
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    found = start_cluster()
    yield found
    found.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def service(name: str, protocol: str, port: int, faults: str) -> str:
    # `localhost` in the tunnelled URL: resolved on the bastion's side
    return (
        f"  {name}:\n    listen: 0\n    protocol: {protocol}\n    target: remote\n"
        f"    targets:\n      local: tcp://127.0.0.1:{port}\n"
        f"      remote: {{url: 'tcp://localhost:{port}', via: jump}}\n"
        f"    faults:\n{faults}"
    )


def port_of(engine: Engine, name: str) -> int:
    bound = engine.services[name].bound
    assert bound is not None
    return bound[1]


def the_bastion(engine: Engine) -> Bastion:
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None
    return bastion


async def records(
    engine: Engine, want: Callable[[list[Exchange]], bool], timeout: float = 30.0
) -> list[Exchange]:
    """The store's exchanges once `want` holds for them (recording follows the bytes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = engine.store.all()
        if want(found) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_postgres_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, cluster: Cluster
) -> None:
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
        + service("db", "postgres", cluster.port,
                  "      conflict: {kind: error, sqlstate: '40001',"
                  " match: {sql: 'insert into tunnelled'}, times: 1}\n")
    )
    bastion = the_bastion(engine)
    dsn = Cluster.dsn_at(port_of(engine, "db"))
    rows = [(n, hashlib.md5(str(n).encode()).hexdigest() * 8) for n in range(20_000)]
    expected = hashlib.sha256("\n".join(f"{n}|{t}" for n, t in rows).encode()).hexdigest()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TEMP TABLE tunnelled (n int, t text)")
        with pytest.raises(psycopg.errors.SerializationFailure):  # the fault, injected once
            await conn.execute("INSERT INTO tunnelled VALUES (%s, %s)", (-1, "x"))
        await conn.execute("INSERT INTO tunnelled VALUES (%s, %s)", (-2, "y"))
        await conn.execute("DELETE FROM tunnelled")
        async with conn.cursor() as cur, cur.copy("COPY tunnelled FROM STDIN") as copy:
            for row in rows:  # about 5 MB up through the channel
                await copy.write_row(row)
        cur = await conn.execute("SELECT n, t FROM tunnelled WHERE n >= %s ORDER BY n", (0,))
        got = await cur.fetchall()  # about 5 MB back through the channel
        assert hashlib.sha256("\n".join(f"{n}|{t}" for n, t in got).encode()).hexdigest() == (
            expected
        )
        cur = await conn.execute("SELECT inet_server_port()")
        assert await cur.fetchone() == (cluster.port,)
    assert bastion.state == "up" and bastion.channels_total == 1
    assert bastion.bytes_in > 5_000_000 and bastion.bytes_out > 5_000_000

    def done(found: list[Exchange]) -> bool:
        return any("inet_server_port" in (e.path or "") for e in found) and any(
            "postgres" in e.notes for e in found  # the connection's record, once it closed
        )

    found = await records(engine, done)
    statements = [e for e in found if "sql" in e.notes]
    assert {e.target for e in found} == {"remote"}
    select = next(e for e in statements if (e.path or "").startswith("SELECT n, t"))
    assert select.method == "SELECT" and select.notes["sql"]["rows"] == 20_000
    assert select.notes["sql"]["tag"] == "SELECT 20000"
    assert select.notes["sql"]["params"][0]["value"] == "0"
    injected = next(e for e in statements if e.notes["sql"].get("error"))
    assert injected.notes["sql"]["error"]["sqlstate"] == "40001"
    assert injected.notes["sql"]["error"]["injected"] and injected.faults == ["conflict"]
    inserts = [e for e in statements if e.method == "INSERT" and not e.notes["sql"].get("error")]
    assert len(inserts) == 1  # in sync after the injected error
    copied = next(e for e in statements if e.method == "COPY")
    assert copied.notes["sql"]["copy"]["direction"] == "in"
    assert copied.notes["sql"]["copy"]["bytes"] > 5_000_000 and copied.notes["sql"]["tag"] == (
        "COPY 20000"
    )
    connection = next(e for e in found if "postgres" in e.notes)
    assert connection.notes["postgres"]["user"] == "app"
    assert connection.notes["postgres"]["server_version"].startswith("15")

    # a live switch to the local target and back: each new connection goes where the
    # service points now; only the tunnelled ones open channels
    await engine.switch("db", "local")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT 'direct'")
        assert await cur.fetchone() == ("direct",)
    await engine.switch("db", "remote")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT 'tunnelled again'")
        assert await cur.fetchone() == ("tunnelled again",)
    assert bastion.channels_total == 2 and bastion.connects == 1
    found = await records(engine, lambda f: any("tunnelled again" in (e.path or "") for e in f))
    by_path = {e.path: e.target for e in found if "sql" in e.notes}
    assert by_path["SELECT 'direct'"] == "local"
    assert by_path["SELECT 'tunnelled again'"] == "remote"


async def test_redis_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, redis_server: RedisServer
) -> None:
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
        + service("cache", "redis", redis_server.port,
                  "      readonly: {kind: error, reply: '-READONLY not here',"
                  " match: {command: SET, key: 'ro:*'}}\n")
    )
    bastion = the_bastion(engine)
    client = redis.asyncio.Redis(port=port_of(engine, "cache"))  # RESP3 (HELLO 3)
    try:
        blob = os.urandom(3_000_000)
        assert await client.set("blob", blob)
        got = await client.get("blob")
        assert got is not None and hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
        async with client.pipeline(transaction=False) as pipe:
            for i in range(200):
                pipe.set(f"k:{i}", i)
            pipe.mget([f"k:{i}" for i in range(200)])
            answers = await pipe.execute()
        assert answers[-1] == [str(i).encode() for i in range(200)]
        with pytest.raises(redis.exceptions.ReadOnlyError):
            await client.set("ro:1", "no")
        assert await client.get("ro:1") is None  # the fault answered; the server never saw it
    finally:
        await client.aclose()
    assert bastion.state == "up" and bastion.bytes_in > 3_000_000 and bastion.connects == 1

    def notes(found: list[Exchange]) -> list[dict[str, object]]:
        return [e.notes["redis"] for e in found if "redis" in e.notes]

    found = await records(engine, lambda f: any(n.get("keys") == ["ro:1"] for n in notes(f)))
    commands = [e for e in found if "redis" in e.notes]
    assert {e.target for e in commands} == {"remote"}
    sets = [e for e in commands if e.notes["redis"].get("command") == "SET"]
    assert len(sets) == 202
    refused = next(e for e in sets if e.notes["redis"]["keys"] == ["ro:1"])
    assert refused.faults == ["readonly"] and refused.notes["redis"]["injected"]
    assert (refused.path or "").startswith("SET ro:1")
    mget = next(e for e in commands if e.notes["redis"].get("command") == "MGET")
    assert mget.error is None

    await engine.switch("cache", "local")  # live, no restart: a new connection goes direct
    direct = redis.asyncio.Redis(port=port_of(engine, "cache"))
    try:
        got = await direct.get("blob")
        assert got is not None and hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
    finally:
        await direct.aclose()
    found = await records(engine, lambda f: any(e.target == "local" for e in f))
    assert any(e.target == "local" and "redis" in e.notes for e in found)
