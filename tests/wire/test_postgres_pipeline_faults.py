"""Command-level faults on statements psycopg pipelines (several Parse/Bind/Execute before one
Sync) and on statements sent right behind BEGIN: the fault applies to the statement it matches,
and the client sees what PostgreSQL itself answers when that statement fails (compared with
the same batch run directly, the statement replaced by one that raises the same error)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from psycopg import pq

from tests.wire.pg import Cluster
from tests.wire.test_postgres import port_of, records, sql, statements
from tests.wire.test_postgres_faults import count, faulted, table

RAISE = ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'conflict'; "
         "END $$")


def batch(name: str, faulted_at: int, direct: bool) -> list[tuple[str, tuple[Any, ...]]]:
    """Three inserts; the one at `faulted_at` is the fault's (run directly: the raising DO)."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    for i in range(3):
        if i == faulted_at:
            out.append((RAISE, ()) if direct else
                       (f"INSERT INTO {name}_hit VALUES (%s, %s)", (i, "hit")))
        else:
            out.append((f"INSERT INTO {name} VALUES (%s, %s)", (i, "x")))
    return out


async def run_pipeline(dsn: str, stmts: list[tuple[str, tuple[Any, ...]]],
                       prepare: bool | None = None) -> tuple[Any, ...]:
    """What the client sees of a pipeline batch: the error raised (class, sqlstate, message),
    each cursor's outcome, the connection's state after, and that the next query works."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursors = []
        raised: tuple[str, str | None, str | None] | None = None
        try:
            async with conn.pipeline():
                for text, params in stmts:
                    cursors.append(await conn.execute(text, params or None, prepare=prepare))
        except psycopg.Error as exc:
            raised = (type(exc).__name__, exc.sqlstate, exc.diag.message_primary)
        outcomes = []
        for cur in cursors:
            outcomes.append(cur.statusmessage)
        status = conn.info.transaction_status
        cur = await conn.execute("SELECT 41 + 1")
        assert await cur.fetchone() == (42,)  # in sync: the next query works
        return raised, outcomes, status


async def setup_tables(dsn: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as setup:
        await table(setup, name)
        await table(setup, f"{name}_hit")


@pytest.mark.parametrize("faulted_at", [1, 2])
async def test_an_error_on_a_later_statement_of_a_pipeline_batch(
    make_engine, pg_clusters, faulted_at: int
) -> None:
    name = f"orders_pl{faulted_at}"
    engine = await faulted(make_engine, pg_clusters, f"""\
      conflict: {{kind: error, sqlstate: '40001', message: conflict,
                  match: {{sql: "insert into {name}_hit"}}}}""")
    direct = pg_clusters[0].dsn
    await setup_tables(direct, name)
    expected = await run_pipeline(direct, batch(name, faulted_at, direct=True))
    assert expected[0] == ("SerializationFailure", "40001", "conflict")
    assert await count(direct, name) == 0  # the batch is one implicit transaction: rolled back
    got = await run_pipeline(Cluster.dsn_at(port_of(engine)), batch(name, faulted_at, False))
    # (which results psycopg read before the error, and how many execute() calls it took
    # after, is a race: the error raised and the state after are compared)
    assert (got[0], got[2]) == (expected[0], expected[2])
    assert await count(direct, name) == 0 and await count(direct, f"{name}_hit") == 0
    found = await records(engine, lambda f: any(e.faults for e in statements(f)))
    injected = next(e for e in statements(found) if e.faults)
    assert injected.faults == ["conflict"] and sql(injected)["error"]["injected"]
    assert injected.path == f"INSERT INTO {name}_hit VALUES ($1, $2)"
    assert engine.services["db"].faults.get("conflict").fired == 1
    assert not any("devamb" in (e.path or "") for e in statements(found))


async def test_an_error_on_a_prepared_statement_later_in_a_batch(make_engine,
                                                                 pg_clusters) -> None:
    """Prepared statements are only bound (no Parse): the Bind is decided on."""
    name = "orders_plp"
    engine = await faulted(make_engine, pg_clusters, f"""\
      conflict: {{kind: error, sqlstate: '40001', message: conflict, after: 1,
                  match: {{sql: "insert into {name}_hit"}}}}""")
    direct = pg_clusters[0].dsn
    await setup_tables(direct, name)
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for _ in range(2):  # the 1st batch prepares (after: 1 lets it by), the 2nd binds
            cursors = []
            try:
                async with conn.pipeline():
                    for text, params in batch(name, 1, False):
                        cursors.append(await conn.execute(text, params, prepare=True))
            except psycopg.errors.SerializationFailure:
                break
        else:
            raise AssertionError("the fault should have fired on the 2nd batch")
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        cur = await conn.execute(f"SELECT count(*) FROM {name}", prepare=True)
        assert await cur.fetchone() == (2,)  # the 1st batch only
    assert await count(direct, f"{name}_hit") == 1


async def test_latency_on_a_later_statement_of_a_pipeline_batch(make_engine,
                                                                pg_clusters) -> None:
    name = "orders_pll"
    engine = await faulted(make_engine, pg_clusters, f"""\
      slow: {{kind: latency, delay: 300ms, match: {{sql: "insert into {name}_hit"}}}}""")
    await setup_tables(pg_clusters[0].dsn, name)
    began = time.monotonic()
    raised, outcomes, _status = await run_pipeline(Cluster.dsn_at(port_of(engine)),
                                                  batch(name, 2, False))
    assert time.monotonic() - began >= 0.3
    assert raised is None and outcomes == ["INSERT 0 1"] * 3
    assert await count(pg_clusters[0].dsn, name) == 2
    found = await records(engine, lambda f: sum(e.method == "INSERT" for e in statements(f)) >= 3)
    slow = [e for e in statements(found) if e.faults]
    assert [e.path for e in slow] == [f"INSERT INTO {name}_hit VALUES ($1, $2)"]
    assert (slow[0].duration_ms or 0) >= 300


async def test_reset_on_a_later_statement_of_a_pipeline_batch(make_engine,
                                                              pg_clusters) -> None:
    name = "orders_plr"
    engine = await faulted(make_engine, pg_clusters, f"""\
      cut: {{kind: reset, match: {{sql: "insert into {name}_hit"}}}}""")
    direct = pg_clusters[0].dsn
    await setup_tables(direct, name)
    conn = await psycopg.AsyncConnection.connect(Cluster.dsn_at(port_of(engine)),
                                                 autocommit=True)
    with pytest.raises(psycopg.OperationalError):
        async with conn.pipeline():
            for text, params in batch(name, 1, False):
                await conn.execute(text, params)
    assert conn.broken or conn.closed
    await conn.close()
    assert engine.services["db"].faults.get("cut").fired == 1
    for _ in range(100):  # the backend ends; its unsynced batch never commits
        if await count(direct, name) == 0:
            break
        await asyncio.sleep(0.1)
    assert await count(direct, name) == 0



async def begin_then(dsn: str, statement: str) -> tuple[Any, ...]:
    """psycopg outside autocommit, in a pipeline: its BEGIN goes in the same write as the
    statement, before BEGIN is answered."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        raised = None
        try:
            async with conn.pipeline():
                await conn.execute(statement)
        except psycopg.Error as exc:
            raised = (type(exc).__name__, exc.sqlstate)
        state = conn.info.transaction_status
        await conn.rollback()
        cur = await conn.execute("SELECT 41 + 1")
        assert await cur.fetchone() == (42,)
        return raised, state


async def test_a_statement_pipelined_right_behind_begin_fails_its_transaction(
    make_engine, pg_clusters
) -> None:
    """Before BEGIN is answered devamb cannot know the statement is in a transaction: the
    server raises the error itself, so the transaction fails as PostgreSQL would fail it
    (devamb's own ErrorResponse + ReadyForQuery 'I' told the client it was idle)."""
    name = "orders_pb"
    engine = await faulted(make_engine, pg_clusters, f"""\
      conflict: {{kind: error, sqlstate: '40001', message: conflict,
                  match: {{sql: "insert into {name}"}}}}""")
    direct = pg_clusters[0].dsn
    await setup_tables(direct, name)
    expected = await begin_then(direct, RAISE)
    got = await begin_then(Cluster.dsn_at(port_of(engine)), f"INSERT INTO {name} VALUES (1, 'a')")
    assert got == expected == (("SerializationFailure", "40001"), pq.TransactionStatus.INERROR)
    assert await count(direct, name) == 0
    found = await records(engine, lambda f: any(e.faults for e in statements(f)))
    injected = next(e for e in statements(found) if e.faults)
    assert sql(injected)["transaction"] == "failed"
