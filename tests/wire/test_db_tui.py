"""The TUI on a real engine with a real PostgreSQL cluster and redis-server: statements and
commands sent by psycopg and redis-py show up as SQL and REDIS rows, a failed statement's detail
has its SQLSTATE, message, detail and the connection's startup, and `s` lists the slowest forms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis.asyncio

from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import RedisServer
from tests.ui.test_features import text_of
from tests.ui.waiting import settled, until
from tests.wire.pg import Cluster
from ui.app import make_app
from ui.screens.exchange_detail import ExchangeDetail
from ui.screens.slow import SlowStatements
from ui.widgets.traffic_columns import exchange_cells
from ui.widgets.traffic_list import TrafficList

PROFILE = """
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    targets: {{a: 'tcp://127.0.0.1:{pg}'}}
  cache:
    listen: 0
    protocol: redis
    targets: {{a: 'tcp://127.0.0.1:{redis}'}}
"""
SIZE = (120, 34)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-tui"), None).start()
    yield server
    server.kill()


async def test_statements_and_commands_in_the_tui(
    make_engine: EngineFactory, pg: Cluster, server: RedisServer, tmp_path: Path
) -> None:
    engine = await make_engine(PROFILE.format(pg=pg.port, redis=server.port))
    db, cache = engine.services["db"].bound, engine.services["cache"].bound
    assert db is not None and cache is not None
    dsn = Cluster.dsn_at(db[1]) + " application_name=tui-test"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, name text)")
        await conn.execute("INSERT INTO items VALUES (%s, %s)", (1, "one"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute("INSERT INTO items VALUES (1, 'again')")
        for n in range(3):
            await conn.execute(f"SELECT name FROM items WHERE id = {n}")
    r = redis.asyncio.Redis(port=cache[1], protocol=2)
    await r.set("user:42", "ann")
    assert await r.get("user:42") == b"ann"
    await r.aclose()

    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)

        def rows() -> list[list[str]]:
            return [[text for text, _ in exchange_cells(e)] for e in traffic.rows]

        await until(pilot, lambda: sum(r[3] == "REDIS" for r in rows()) >= 2, "the commands")
        await until(pilot, lambda: sum(r[3] == "SQL" for r in rows()) >= 6, "the statements")
        shown = rows()
        assert ["CONN", "app@postgres (tui-test)", "ok"] in [r[3:6] for r in shown]
        assert ["REDIS", "GET user:42", "ok"] in [r[3:6] for r in shown]
        assert ["SQL", "INSERT INTO items VALUES (1, 'again')", "23505"] in [r[3:6] for r in shown]
        assert ["SQL", "SELECT name FROM items WHERE id = 2", "ok"] in [r[3:6] for r in shown]

        await pilot.press("space", "home")
        for _ in range(len(shown)):
            if traffic.current is not None and traffic.current.get("error"):
                break
            await pilot.press("down")
        assert traffic.current is not None and "23505" in str(traffic.current["error"])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeDetail), "the detail")
        detail = app.screen

        def text() -> str:
            return "\n".join(f"[{s.border_title}]\n{text_of(s)}"
                             for s in detail.query(".detail-section"))

        await until(pilot, lambda: "Connection #" in text(), "the connection's startup")
        shown_text = text()
        assert "[SQL]\nINSERT INTO items VALUES (1, 'again')" in shown_text
        assert "SQLSTATE" in shown_text and "23505" in shown_text
        assert "duplicate key value violates unique constraint" in shown_text
        assert "Key (id)=(1) already exists." in shown_text
        assert "tui-test" in shown_text and "Transaction  idle" in shown_text
        await pilot.press("escape", "d")
        await pilot.pause()
        await pilot.press("s")  # db: the first service of the table
        await until(pilot, lambda: isinstance(app.screen, SlowStatements), "the slow screen")
        slow = app.screen
        assert isinstance(slow, SlowStatements)
        await until(pilot, lambda: slow.view is not None, "the slow view")
        assert slow.view is not None
        forms = {row["statement"]: row for row in slow.view["slowest"]}
        assert forms["SELECT name FROM items WHERE id = ?"]["count"] == 3
        assert forms["INSERT INTO items VALUES (?, ?)"]["errors"] == 1
