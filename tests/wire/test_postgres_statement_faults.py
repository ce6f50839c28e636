"""A command fault on one statement of a multi-statement simple Query: only that statement is
replaced (by one raising the SQLSTATE), so the server runs the statements before it, raises
there and skips the rest, as on a real error (asserted from psycopg and psql)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tests.wire.pg import Cluster
from tests.wire.test_postgres import port_of, records, sql, statements
from tests.wire.test_postgres_faults import count, faulted, table


async def setup(cluster: Cluster, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(cluster.dsn, autocommit=True) as conn:
        await table(conn, name)


async def test_error_on_the_second_insert_of_an_explicit_transaction(make_engine,
                                                                     pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "insert into orders_m values (2"},
                 times: 1}""")
    await setup(pg_clusters[0], "orders_m")
    direct = pg_clusters[0].dsn
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SerializationFailure):
            await conn.execute("BEGIN; INSERT INTO orders_m VALUES (1, 'a;b'); "
                               "INSERT INTO orders_m VALUES (2, 'b'); COMMIT")
        # the BEGIN and the first INSERT ran: the client is in the failed transaction
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            await conn.execute("SELECT 1")
        await conn.rollback()
        assert await count(direct, "orders_m") == 0  # the first INSERT was never committed
        cur = await conn.execute("SELECT 2")  # the connection works
        assert await cur.fetchone() == (2,)
        await conn.execute("BEGIN; INSERT INTO orders_m VALUES (3, 'c'); "
                           "INSERT INTO orders_m VALUES (2, 'again'); COMMIT")  # times: 1
    assert await count(direct, "orders_m") == 2
    found = await records(engine, lambda f: any(e.path == "SELECT 2" for e in statements(f)))
    injected = next(e for e in statements(found) if e.faults)
    assert injected.faults == ["conflict"]
    note = sql(injected)
    assert note["statement"] == ("BEGIN; INSERT INTO orders_m VALUES (1, 'a;b'); "
                                 "INSERT INTO orders_m VALUES (2, 'b'); COMMIT")  # as sent
    assert note["error"]["sqlstate"] == "40001" and note["error"]["injected"]
    assert note["error"]["statement"] == 3
    assert note["faulted"] == [{"statement": 3, "faults": ["conflict"]}]
    assert note["tags"] == ["BEGIN", "INSERT 0 1"] and note["transaction"] == "failed"
    assert injected.error and injected.error.startswith("40001")
    assert engine.services["db"].faults.get("conflict").fired == 1


async def test_implicit_transaction_commits_nothing(make_engine, pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '23505', match: {sql: "insert into orders_i values (2"}}""")
    await setup(pg_clusters[0], "orders_i")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute("INSERT INTO orders_i VALUES (1, 'a'); "
                               "INSERT INTO orders_i VALUES (2, 'b')")
        # one implicit transaction, rolled back by the server: the client is idle again
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cur = await conn.execute("SELECT count(*) FROM orders_i")
        assert await cur.fetchone() == (0,)
    assert await count(pg_clusters[0].dsn, "orders_i") == 0


async def test_a_select_before_the_faulted_statement(make_engine, pg_clusters) -> None:
    """psycopg raises on the error: the SELECT's rows that came before it are not returned."""
    engine = await faulted(make_engine, pg_clusters, """\
      broken: {kind: error, sqlstate: '08006', match: {sql: "select 'second'"}}""")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        with pytest.raises(psycopg.errors.ConnectionFailure):
            await cur.execute("SELECT 'first' FROM generate_series(1, 3); SELECT 'second'")
        with pytest.raises(psycopg.ProgrammingError):  # no result to fetch
            await cur.fetchall()
        cur = await conn.execute("SELECT 'first'; SELECT 'third'")  # not matched
        assert await cur.fetchall() == [("first",)]
        assert cur.nextset() and await cur.fetchall() == [("third",)]
    found = await records(engine, lambda f: sum(bool(e.faults) for e in statements(f)) >= 1)
    injected = next(e for e in statements(found) if e.faults)
    assert sql(injected)["rows"] == 3 and sql(injected)["tag"] == "SELECT 3"


async def test_psql_runs_the_statements_before_the_fault(make_engine, pg_clusters) -> None:
    """psql -c sends its text as one Query: without a transaction in it, statements before
    the faulted one are part of the implicit transaction and roll back; after an explicit
    COMMIT in the text, they stay."""
    engine = await faulted(make_engine, pg_clusters, """\
      canceled: {kind: error, sqlstate: '57014', message: "canceling statement",
                 match: {sql: "update orders_q"}}""")
    await setup(pg_clusters[0], "orders_q")
    done = await asyncio.to_thread(
        pg_clusters[0].psql, port_of(engine),
        "BEGIN; INSERT INTO orders_q VALUES (1, 'kept'); COMMIT; "
        "INSERT INTO orders_q VALUES (2, 'lost'); UPDATE orders_q SET item = 'x'; "
        "INSERT INTO orders_q VALUES (3, 'never')")
    assert done.returncode != 0 and "canceling statement" in done.stderr, done.stderr
    async with await psycopg.AsyncConnection.connect(pg_clusters[0].dsn) as conn:
        cur = await conn.execute("SELECT id, item FROM orders_q ORDER BY id")
        assert await cur.fetchall() == [(1, "kept")]


async def test_single_statement_queries_are_matched_whole(make_engine, pg_clusters) -> None:
    """A Query of one statement (a trailing `;` or comment included) is answered as before:
    by devamb outside a transaction, the statement's text matched whole."""
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "select 41"}}""")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SerializationFailure):
            await conn.execute("SELECT 41; -- the answer, almost\n;")
        cur = await conn.execute("SELECT 42")
        assert await cur.fetchone() == (42,)
    found = await records(engine, lambda f: any(e.path == "SELECT 42" for e in statements(f)))
    injected = next(e for e in statements(found) if e.faults)
    assert "faulted" not in sql(injected) and "statement" not in sql(injected)["error"]
    assert sql(injected)["transaction"] == "idle" and "tags" not in sql(injected)


async def test_after_counts_statements_and_latency_holds_the_query(make_engine,
                                                                   pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      slow: {kind: latency, delay: 200ms, match: {sql: "select 'slow'"}}
      third: {kind: error, sqlstate: '40001', match: {sql: "select 'n'"}, after: 2, times: 1}""")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        began = time.monotonic()
        cur = await conn.execute("SELECT 'fast'; SELECT 'slow'; SELECT 'after'")
        assert time.monotonic() - began >= 0.2
        assert await cur.fetchall() == [("fast",)]
        # `after: 2` lets the first two matching statements through: the third is faulted
        with pytest.raises(psycopg.errors.SerializationFailure):
            await conn.execute("SELECT 'n'; SELECT 'n'; SELECT 'n'; SELECT 'n'")
        cur = await conn.execute("SELECT 'n'; SELECT 'n'")  # times: 1
        assert await cur.fetchall() == [("n",)]
    assert engine.services["db"].faults.get("third").fired == 1
    assert engine.services["db"].faults.get("third").seen == 3  # (the 4th never ran; then off)
    found = await records(engine, lambda f: sum(bool(e.faults) for e in statements(f)) >= 2)
    slow = next(e for e in statements(found) if e.faults == ["slow"])
    assert sql(slow)["faulted"] == [{"statement": 2, "faults": ["slow"]}]
    assert (slow.duration_ms or 0) >= 200 and sql(slow)["tags"] == ["SELECT 1"] * 3
    third = next(e for e in statements(found) if e.faults == ["third"])
    assert sql(third)["error"]["statement"] == 3 and sql(third)["tags"] == ["SELECT 1"] * 2


async def test_a_real_error_before_the_faulted_statement_is_recorded(make_engine,
                                                                     pg_clusters) -> None:
    engine = await faulted(make_engine, pg_clusters, """\
      conflict: {kind: error, sqlstate: '40001', match: {sql: "select 'second'"}}""")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):  # the server never reached it
            await conn.execute("SELECT 1/0; SELECT 'second'")
    found = await records(engine, lambda f: any(e.faults for e in statements(f)))
    faulted_record = next(e for e in statements(found) if e.faults)
    assert faulted_record.error and faulted_record.error.startswith("22012")
    assert sql(faulted_record)["error"]["sqlstate"] == "22012"
