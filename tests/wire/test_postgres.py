"""protocol: postgres against a real PostgreSQL: psql, psycopg 3 and asyncpg through devamb,
each statement recorded as an exchange; passwords never recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import psycopg
import pytest

from devamb.engine.core import Engine
from devamb.inspect.exchange import Exchange
from devamb.inspect.filter import compile_filter
from tests.conftest import EngineFactory
from tests.wire.pg import PASSWORD, USER, Cluster

PROFILE = """
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    target: a
    targets:
      a: tcp://127.0.0.1:{port}
      b: tcp://127.0.0.1:{port2}
{extra}
"""


async def start(make_engine: EngineFactory, clusters: list[Cluster], extra: str = "") -> Engine:
    text = PROFILE.format(port=clusters[0].port, port2=clusters[1].port, extra=extra)
    return await make_engine(text)


def port_of(engine: Engine) -> int:
    bound = engine.services["db"].bound
    assert bound is not None
    return bound[1]


async def records(engine: Engine, want: Callable[[list[Exchange]], bool],
                  timeout: float = 20.0) -> list[Exchange]:
    """The store's exchanges once `want` holds for them (recording follows the bytes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = engine.store.all()
        if want(found) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


def statements(found: list[Exchange]) -> list[Exchange]:
    return [e for e in found if "sql" in e.notes]


def sql(exchange: Exchange) -> dict[str, Any]:
    return exchange.notes["sql"]


def everything(found: list[Exchange]) -> str:
    return json.dumps([e.detail() for e in found], default=repr)


async def test_psql_simple_queries_are_exchanges(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    cluster = pg_clusters[0]
    done = await asyncio.to_thread(
        cluster.psql, port_of(engine),
        "CREATE TEMP TABLE orders (id int, item text); "
        "INSERT INTO orders VALUES (1, 'a'), (2, 'b'); SELECT * FROM orders ORDER BY id",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["1|a", "2|b"]
    bad = await asyncio.to_thread(cluster.psql, port_of(engine), "SELECT * FROM missing_table")
    assert bad.returncode != 0
    found = await records(engine, lambda f: len(statements(f)) >= 2 and sum(
        1 for e in f if "postgres" in e.notes) >= 2)
    ok, failed = statements(found)[-2:]
    assert ok.method == "CREATE" and ok.path.startswith("CREATE TEMP TABLE orders")
    assert sql(ok)["tags"] == ["CREATE TABLE", "INSERT 0 2", "SELECT 2"]
    assert sql(ok)["rows"] == 2 and sql(ok)["transaction"] == "idle"
    assert ok.error is None and ok.duration_ms is not None and ok.protocol == "postgres"
    assert failed.method == "SELECT" and sql(failed)["error"]["sqlstate"] == "42P01"
    assert failed.error and failed.error.startswith("42P01 relation")
    conn = next(e for e in found if "postgres" in e.notes)
    assert conn.notes["postgres"]["user"] == USER
    assert conn.notes["postgres"]["database"] == "postgres"
    assert conn.notes["postgres"]["application_name"] == "psql"
    assert conn.notes["postgres"]["auth"] == "sasl"
    assert conn.method == "CONNECT" and conn.path == "app@postgres (psql)"
    assert PASSWORD not in everything(found)
    assert [e.id for e in found if compile_filter("~sqlstate 42P01")(e)] == [failed.id]
    assert [e.id for e in found if compile_filter("~sql 'temp table orders' & !~err")(e)] == [
        ok.id]
    assert compile_filter("~err & ~sql missing_table & ~dur >=0ms")(failed)
    assert str(compile_filter("~err & ~dur >1s")) == str(compile_filter("~e & ~d >1s"))


async def test_psycopg_extended_protocol_prepared_and_copy(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    dsn = Cluster.dsn_at(port_of(engine)) + " application_name=shop"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TEMP TABLE items (id int, name text)")
        for i in range(3):
            await conn.execute("INSERT INTO items VALUES (%s, %s)", (i, f"n{i}"),
                               prepare=True)
        cur = await conn.execute("SELECT name FROM items WHERE id >= %s ORDER BY id", (1,))
        assert [r[0] for r in await cur.fetchall()] == ["n1", "n2"]
        async with conn.cursor() as cur, cur.copy("COPY items FROM STDIN") as copy:
            for i in range(10, 15):
                await copy.write_row((i, f"c{i}"))
        cur = await conn.execute("SELECT count(*) FROM items")
        assert (await cur.fetchone()) == (8,)
        async with conn.transaction():
            await conn.execute("UPDATE items SET name = 'x' WHERE id = %s", (1,))
    found = await records(engine, lambda f: any(
        e.method == "COMMIT" and "transaction" in sql(e) for e in statements(f))
        and any("postgres" in e.notes for e in f))
    stmts = statements(found)
    inserts = [e for e in stmts if e.method == "INSERT"]
    assert len(inserts) == 3
    assert all(sql(e)["tag"] == "INSERT 0 1" for e in inserts)
    assert any(sql(e)["name"] for e in inserts)  # the prepared ones run by statement name
    assert sql(inserts[0])["params"][1]["value"] == "n0"
    assert sql(inserts[1])["params"][0] == {"type": "int2", "value": "1"}  # binary, decoded
    select = next(e for e in stmts if e.path.startswith("SELECT name"))
    assert sql(select)["rows"] == 2 and sql(select)["tag"] == "SELECT 2"
    copy = next(e for e in stmts if e.method == "COPY")
    assert sql(copy)["copy"]["direction"] == "in" and sql(copy)["copy"]["bytes"] > 0
    assert sql(copy)["tag"] == "COPY 5"
    update = next(e for e in stmts if e.method == "UPDATE")
    assert sql(update)["transaction"] == "in transaction"
    conn_record = next(e for e in found if "postgres" in e.notes)
    assert conn_record.notes["postgres"]["application_name"] == "shop"
    assert PASSWORD not in everything(found)


async def test_redact_params_hides_bound_values(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters, "    redact_params: true")
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT %s::text AS secret", ("card-4242",))
    found = await records(engine, lambda f: any(e.method == "SELECT" for e in statements(f)))
    select = next(e for e in statements(found) if e.method == "SELECT")
    assert sql(select)["params"] == [{"type": "unspecified", "value": "<redacted>"}] or (
        sql(select)["params"][0]["value"] == "<redacted>")
    assert "card-4242" not in everything(found)


async def test_asyncpg_pipelined_statements(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    conn = await asyncpg.connect(host="127.0.0.1", port=port_of(engine), user=USER,
                                 password=PASSWORD, database="postgres", ssl=False)
    try:
        await conn.execute("CREATE TEMP TABLE t (a int, b text)")
        await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(i, str(i)) for i in range(20)])
        rows = await conn.fetch("SELECT a FROM t WHERE a < $1 ORDER BY a", 5)
        assert [r["a"] for r in rows] == [0, 1, 2, 3, 4]
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.fetch("SELECT * FROM nowhere")
        assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await conn.close()
    found = await records(engine, lambda f: any(
        e.path == "SELECT 41 + 1" for e in statements(f)) and any("postgres" in e.notes for e in f))
    stmts = statements(found)
    inserts = [e for e in stmts if e.method == "INSERT" and sql(e)["kind"] == "extended"]
    assert len(inserts) == 20 and all(sql(e)["tag"] == "INSERT 0 1" for e in inserts)
    assert sql(inserts[0])["params"][0]["type"] == "int4"
    select = next(e for e in stmts if e.path.startswith("SELECT a FROM t") and
                  sql(e)["kind"] == "extended")
    assert sql(select)["rows"] == 5
    missing = [e for e in stmts if "nowhere" in e.path and e.error]
    assert missing and sql(missing[0])["error"]["sqlstate"] == "42P01"
    assert not any(e.notes.get("postgres", {}).get("opaque") for e in found)


async def test_ssl_refused_is_followed_and_tls_is_opaque(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    dsn = Cluster.dsn_at(port_of(engine)).replace("sslmode=disable", "sslmode=prefer")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT 'plain'")  # a refuses TLS: the client goes on in clear
    await engine.switch("db", "b")
    dsn = Cluster.dsn_at(port_of(engine)).replace("sslmode=disable", "sslmode=require")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT 'secret'")
        assert await cur.fetchone() == ("secret",)
    found = await records(engine, lambda f: sum("postgres" in e.notes for e in f) >= 2)
    plain, tls = [e for e in found if "postgres" in e.notes][:2]
    assert plain.notes["postgres"]["encryption"] == "refused" and plain.target == "a"
    assert "opaque" not in plain.notes["postgres"]
    assert tls.notes["postgres"]["encryption"] == "tls" and tls.target == "b"
    assert "TLS" in tls.notes["postgres"]["opaque"]
    assert [e.path for e in statements(found)] == ["SELECT 'plain'"]


async def test_listen_notify_and_copy_out_are_shown_as_such(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    dsn = Cluster.dsn_at(port_of(engine))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as sender:
        await listener.execute("LISTEN orders_changed")
        await sender.execute("NOTIFY orders_changed, 'order 42'")
        gen = listener.notifies(timeout=20, stop_after=1)
        got = [n async for n in gen]
        assert [(n.channel, n.payload) for n in got] == [("orders_changed", "order 42")]
        async with sender.cursor() as cur:
            rows = []
            async with cur.copy("COPY (SELECT generate_series(1, 100)) TO STDOUT") as copy:
                async for row in copy.rows():
                    rows.append(row)
            assert len(rows) == 100
    found = await records(engine, lambda f: any(e.method == "NOTIFY" and sql(e)["kind"] ==
                                                "notify" for e in statements(f)))
    push = next(e for e in statements(found) if sql(e)["kind"] == "notify")
    assert sql(push)["channel"] == "orders_changed" and sql(push)["payload"] == "order 42"
    assert push.path == "NOTIFY orders_changed"
    copy_out = next(e for e in statements(found) if e.method == "COPY")
    assert sql(copy_out)["copy"]["direction"] == "out" and sql(copy_out)["copy"]["bytes"] > 0
    assert sql(copy_out)["tag"] == "COPY 100"
    listen = next(e for e in statements(found) if e.method == "LISTEN")
    assert sql(listen)["tag"] == "LISTEN"
