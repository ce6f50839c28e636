"""on_switch for a postgres service: a pool's connections move to the new target at their next
safe point (drain), an open transaction is never cut; close resets them now."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.wire.pg import Cluster
from tests.wire.test_postgres import port_of, records, start


async def server_port(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT inet_server_port()")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


def connections(engine, target: str) -> dict[str, int]:
    status = engine.services["db"].status()
    found = next(t for t in status["targets"] if t["name"] == target)
    return found["connections"]


async def test_drain_moves_a_pool_without_cutting_a_transaction(make_engine, pg_clusters) -> None:
    a, b = pg_clusters
    engine = await start(make_engine, pg_clusters)
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(a.dsn, autocommit=True) as setup:
        await setup.execute("CREATE TABLE IF NOT EXISTS moved (n int)")
        await setup.execute("TRUNCATE moved")
    async with AsyncConnectionPool(dsn, min_size=3, max_size=3, open=False,
                                   check=AsyncConnectionPool.check_connection) as pool:
        await pool.wait(timeout=30)
        assert await server_port(pool) == a.port
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO moved VALUES (1)")
            await engine.switch("db", "b")  # the service's default for postgres: drain
            # idle pooled connections close at once; this one waits for its COMMIT
            assert connections(engine, "a")["draining"] >= 1
            await conn.execute("INSERT INTO moved VALUES (2)")
            cur = await conn.execute("SELECT inet_server_port()")
            assert await cur.fetchone() == (a.port,)  # still on a, mid-transaction
        # committed on a, whole
        async with await psycopg.AsyncConnection.connect(a.dsn, autocommit=True) as check:
            cur = await check.execute("SELECT count(*) FROM moved")
            assert await cur.fetchone() == (2,)
        for _ in range(200):
            if connections(engine, "a")["open"] == 0:
                break
            await asyncio.sleep(0.05)
        assert connections(engine, "a") == {"open": 0, "draining": 0}
        ports = {await server_port(pool) for _ in range(6)}
        assert ports == {b.port}
    found = await records(engine, lambda f: any(e.notes.get("drain") for e in f))
    assert any(e.notes.get("drain") == "closed at a safe point" for e in found)


async def test_close_resets_connections_now(make_engine, pg_clusters) -> None:
    b = pg_clusters[1]
    engine = await start(make_engine, pg_clusters)
    conn = await psycopg.AsyncConnection.connect(Cluster.dsn_at(port_of(engine)))
    await conn.execute("SELECT 1")  # in a transaction now
    await engine.switch("db", "b", "close")
    with pytest.raises(psycopg.OperationalError):
        for _ in range(50):
            await conn.execute("SELECT 1")
            await asyncio.sleep(0.05)
    await conn.close()
    async with await psycopg.AsyncConnection.connect(Cluster.dsn_at(port_of(engine))) as again:
        cur = await again.execute("SELECT inet_server_port()")
        assert await cur.fetchone() == (b.port,)
