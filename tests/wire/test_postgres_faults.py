"""Command-level faults on a postgres service, asserted from the clients: an injected
ErrorResponse leaves the protocol in sync (the next query on the connection works) and the
server never sees the statement; latency delays matching statements; reset cuts a transaction."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import psycopg
import pytest

from tests.wire.pg import PASSWORD, USER, Cluster
from tests.wire.test_postgres import port_of, records, sql, start, statements

FAULTS = """
    faults:
{faults}
"""


async def faulted(make_engine, clusters, faults: str):
    return await start(make_engine, clusters, FAULTS.format(faults=faults))


async def table(conn: psycopg.AsyncConnection, name: str) -> None:
    await conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (id int, item text)")
    await conn.execute(f"TRUNCATE {name}")


async def count(dsn: str, name: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {name}")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_injected_error_extended_protocol(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "insert into orders_e"}, times: 1}""")
    direct = pg_clusters[0].dsn
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_e")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SerializationFailure):
            await conn.execute("INSERT INTO orders_e VALUES (%s, %s)", (1, "first"))
        await conn.execute("INSERT INTO orders_e VALUES (%s, %s)", (2, "second"))  # in sync
        cur = await conn.execute("SELECT id FROM orders_e ORDER BY id")
        assert await cur.fetchall() == [(2,)]  # the server never saw the first
    assert await count(direct, "orders_e") == 1
    found = await records(engine, lambda f: sum(e.method == "INSERT" for e in statements(f)) >= 2)
    injected = next(e for e in statements(found) if e.faults)
    assert injected.faults == ["conflict"]
    assert sql(injected)["error"]["sqlstate"] == "40001" and sql(injected)["error"]["injected"]
    assert injected.error and injected.error.startswith("40001")


async def test_injected_error_simple_query_in_transaction(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      canceled: {kind: error, sqlstate: '57014', message: "canceling statement",
                 match: {sql: "update orders_s"}}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_s")
        await setup.execute("INSERT INTO orders_s VALUES (1, 'a')")
    done = await asyncio.to_thread(
        pg_clusters[0].psql, port_of(engine), "UPDATE orders_s SET item = 'b'")
    assert done.returncode != 0 and "canceling statement" in done.stderr
    again = await asyncio.to_thread(pg_clusters[0].psql, port_of(engine),
                                    "SELECT item FROM orders_s")
    assert again.returncode == 0 and again.stdout.strip() == "a"
    async with await psycopg.AsyncConnection.connect(Cluster.dsn_at(port_of(engine))) as conn:
        await conn.execute("SELECT 1")  # a transaction is open
        with pytest.raises(psycopg.errors.QueryCanceled):
            await conn.execute("UPDATE orders_s SET item = 'c'")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        await conn.rollback()
        cur = await conn.execute("SELECT item FROM orders_s")
        assert await cur.fetchone() == ("a",)
    assert engine.services["db"].faults.get("canceled").fired == 2


async def test_asyncpg_sees_the_sqlstate_class(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      busy: {kind: error, sqlstate: '53300', match: {sql: "select 7*"}, after: 1, times: 1}""")
    conn = await asyncpg.connect(host="127.0.0.1", port=port_of(engine), user=USER,
                                 password=PASSWORD, database="postgres", ssl=False)
    try:
        assert await conn.fetchval("SELECT 7*$1::int", 2) == 14  # after: 1 lets one through
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await conn.fetchval("SELECT 7*$1::int + 1", 3)
        assert await conn.fetchval("SELECT 7*$1::int", 3) == 21
        rows = await conn.fetch("SELECT generate_series(1, $1::int)", 3)
        assert len(rows) == 3
    finally:
        await conn.close()


async def test_latency_on_matching_statements_only(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      slow: {kind: latency, delay: 300ms, match: {sql: "pg_sleep(0)"}}""")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        began = time.monotonic()
        await conn.execute("SELECT pg_sleep(0)")
        assert time.monotonic() - began >= 0.3
        cur = await conn.execute("SELECT 5")
        assert await cur.fetchone() == (5,)
    found = await records(engine, lambda f: any(e.path == "SELECT 5" for e in statements(f)))
    slow = next(e for e in statements(found) if "pg_sleep" in (e.path or ""))
    assert slow.faults == ["slow"] and (slow.duration_ms or 0) >= 300
    assert not next(e for e in statements(found) if e.path == "SELECT 5").faults


async def test_reset_mid_transaction_rolls_back(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      cut: {kind: reset, match: {sql: "insert into orders_r values (2*"}}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_r")
    conn = await psycopg.AsyncConnection.connect(Cluster.dsn_at(port_of(engine)))
    await conn.execute("INSERT INTO orders_r VALUES (1, 'a')")
    with pytest.raises(psycopg.OperationalError):
        await conn.execute("INSERT INTO orders_r VALUES (2, 'b')")
    assert conn.closed or conn.broken
    await conn.close()
    for _ in range(100):  # the server ends the backend and rolls its transaction back
        if await count(direct, "orders_r") == 0:
            break
        await asyncio.sleep(0.1)
    assert await count(direct, "orders_r") == 0


async def test_commit_after_injected_error_in_transaction_rolls_back(make_engine,
                                                                     pg_clusters) -> None:
    """In a transaction the server raises the injected error itself: a COMMIT sent after it
    rolls back as on a real failure (devamb answering alone would leave it committable)."""
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', message: "it's a $devamb$ \\\\ conflict",
                 match: {sql: "insert into orders_t values (2"}}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_t")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(  # client-side binding: simple Query
            dsn, autocommit=True, cursor_factory=psycopg.AsyncClientCursor) as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO orders_t VALUES (1, 'a')")
        with pytest.raises(psycopg.errors.SerializationFailure) as raised:
            await conn.execute("INSERT INTO orders_t VALUES (2, 'b')")
        assert raised.value.diag.message_primary == "it's a $devamb$ \\ conflict"
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        await conn.execute("COMMIT")  # of a failed transaction: rolls back
        assert await count(direct, "orders_t") == 0
        async with conn.transaction():  # the next transaction works
            await conn.execute("INSERT INTO orders_t VALUES (%s, %s)", (3, "c"))
            cur = await conn.execute("SELECT id FROM orders_t")
            assert await cur.fetchall() == [(3,)]
    assert await count(direct, "orders_t") == 1
    found = await records(engine, lambda f: sum(e.method == "INSERT" for e in statements(f)) >= 3)
    injected = next(e for e in statements(found) if e.faults)
    assert injected.faults == ["conflict"]
    assert injected.path == "INSERT INTO orders_t VALUES (2, 'b')"
    assert sql(injected)["error"]["sqlstate"] == "40001" and sql(injected)["error"]["injected"]
    assert sql(injected)["transaction"] == "failed" and sql(injected)["kind"] == "simple"
    assert injected.error and injected.error.startswith("40001")
    assert not any("devamb" in (e.path or "") for e in statements(found))


async def test_extended_batch_in_transaction_commit_rolls_back(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "insert into orders_x"}, after: 1,
                 times: 1}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_x")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn) as conn:  # psycopg opens a transaction
        await conn.execute("INSERT INTO orders_x VALUES (%s, %s)", (1, "a"))
        with pytest.raises(psycopg.errors.SerializationFailure):
            await conn.execute("INSERT INTO orders_x VALUES (%s, %s)", (2, "b"))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        await conn.execute("COMMIT")
        assert await count(direct, "orders_x") == 0
        await conn.execute("INSERT INTO orders_x VALUES (%s, %s)", (3, "c"))
        await conn.commit()
    assert await count(direct, "orders_x") == 1
    found = await records(engine, lambda f: sum(e.method == "INSERT" for e in statements(f)) >= 3)
    injected = next(e for e in statements(found) if e.faults)
    assert injected.faults == ["conflict"] and sql(injected)["error"]["injected"]
    assert sql(injected)["kind"] == "extended" and injected.error.startswith("40001")


async def test_asyncpg_transaction_fails_on_the_server(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001',
                 match: {sql: "insert into orders_a values ($1, 2"}}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_a")
    conn = await asyncpg.connect(host="127.0.0.1", port=port_of(engine), user=USER,
                                 password=PASSWORD, database="postgres", ssl=False)
    try:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO orders_a VALUES ($1, 1::text)", 1)
        with pytest.raises(asyncpg.SerializationError):
            await conn.execute("INSERT INTO orders_a VALUES ($1, 2::text)", 2)
        await conn.execute("COMMIT")
        assert await count(direct, "orders_a") == 0
        async with conn.transaction():
            await conn.execute("INSERT INTO orders_a VALUES ($1, 3::text)", 3)
        assert await conn.fetchval("SELECT count(*) FROM orders_a") == 1
    finally:
        await conn.close()


async def test_psql_commit_after_injected_error_rolls_back(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "insert into orders_p values (2"}}""")
    direct = pg_clusters[0].dsn
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as setup:
        await table(setup, "orders_p")
    done = await asyncio.to_thread(  # one session, each -c its own Query
        pg_clusters[0].psql, port_of(engine), "COMMIT", "-v", "ON_ERROR_STOP=0",
        "-c", "BEGIN", "-c", "INSERT INTO orders_p VALUES (1, 'a')",
        "-c", "INSERT INTO orders_p VALUES (2, 'b')")
    assert "40001" in done.stderr or "injected by devamb" in done.stderr, done.stderr
    assert await count(direct, "orders_p") == 0
