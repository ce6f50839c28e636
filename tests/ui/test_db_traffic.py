"""Database exchanges in the TUI, on fixed data: the SQL traffic list (a snapshot at 110x32),
the detail of a statement (SQL, parameters, result, error fields, the connection's startup),
a Redis command's, a TLS connection's, and the slowest-statements screen (`s`)."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.ui.db_exchanges import db_details, db_exchanges, db_status
from tests.ui.fake_control import FakeControl
from tests.ui.test_features import text_of
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.screens.exchange_detail import ExchangeDetail
from ui.screens.slow import SlowStatements
from ui.widgets.traffic_columns import exchange_cells
from ui.widgets.traffic_list import TrafficList

SIZE = (110, 32)


def db_app():
    fake = FakeControl(db_status(), history=db_exchanges())
    fake.details.update(db_details())
    return make_app(fake, poll_status=False), fake


def test_sql_traffic_list(snap_compare) -> None:
    app, fake = db_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("x")
        await until(pilot, lambda: len(app.main.query_one(TrafficList).rows) == 15)
        await pilot.press("space", "up", "up", "up", "up")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_rows_of_statements_commands_and_connections() -> None:
    rows = {int(e["id"]): [text for text, _ in exchange_cells(e)] for e in db_exchanges()}
    assert rows[7][3:6] == ["SQL", db_exchanges()[6]["path"], "ok"]
    assert rows[9][3] == "SQL" and rows[9][5] == "23505"  # the SQLSTATE as its status
    assert rows[11][4].startswith("⚡UPDATE orders") and rows[11][5] == "40001"
    assert rows[3][3:6] == ["REDIS", "GET session:42", "ok"]
    assert rows[10][3:6] == ["REDIS", "LPUSH session:42 x", "err"]
    assert rows[1][3:6] == ["CONN", "app@shop (shop-api)", "ok"]
    assert rows[2][3:5] == ["CONN", "127.0.0.1:53012"]
    assert rows[14][4] == "127.0.0.1:53012  opaque (TLS)"


def _text(screen: ExchangeDetail) -> str:
    return "\n".join(
        f"[{s.border_title}]\n{text_of(s)}" for s in screen.query(".detail-section")
        if isinstance(s, Static)
    )


async def _open(pilot: Pilot, app, fake: FakeControl, exchange_id: int) -> str:
    await settled(pilot, fake)
    await pilot.press("x")
    traffic = app.main.query_one(TrafficList)
    await until(pilot, lambda: len(traffic.rows) == 15)
    await pilot.press("space", "home")
    for _ in range(20):
        if traffic.current is not None and traffic.current["id"] == exchange_id:
            break
        await pilot.press("down")
    assert traffic.current is not None and traffic.current["id"] == exchange_id, traffic.current
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ExchangeDetail), "the detail")
    screen = app.screen
    await until(pilot, lambda: "Connection" in _text(screen) or "Reply" in _text(screen),
                "the full record")
    return _text(app.screen)


async def test_a_statements_detail() -> None:
    app, fake = db_app()
    async with app.run_test(size=SIZE) as pilot:
        text = await _open(pilot, app, fake, 5)
    assert "[SQL]\nINSERT INTO orders (customer, total) VALUES ($1, $2)" in text
    assert "[Parameters (2)]" in text and "int4" in text and "19.90" in text
    assert "Command tag  INSERT 0 1" in text and "Transaction  in transaction" in text
    assert "[Connection #1]" in text and "shop-api" in text and "Database" in text


async def test_a_failed_statements_error_fields() -> None:
    app, fake = db_app()
    async with app.run_test(size=SIZE) as pilot:
        text = await _open(pilot, app, fake, 9)
    assert "SQLSTATE" in text and "23505" in text
    assert 'duplicate key value violates unique constraint "orders_pkey"' in text
    assert "Key (id)=(7) already exists." in text


async def test_a_redis_commands_detail_and_a_tls_connection() -> None:
    app, fake = db_app()
    async with app.run_test(size=SIZE) as pilot:
        text = await _open(pilot, app, fake, 10)
        assert "[Command]\nLPUSH session:42 x" in text
        assert "Reply" in text and "error: WRONGTYPE Operation" in text
        assert "Keys       session:42" in text
        await pilot.press("escape")
        text = await _open(pilot, app, fake, 14)
    assert "opaque (TLS)" in text and "TLS negotiated" in text


async def test_s_opens_the_slowest_statements() -> None:
    app, fake = db_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("s")  # db, the first service
        await until(pilot, lambda: isinstance(app.screen, SlowStatements), "the slow screen")
        screen = app.screen
        assert isinstance(screen, SlowStatements)
        await until(pilot, lambda: screen.view is not None, "the view")
        table = screen.query_one(DataTable)
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first[0] == "1" and first[-1] == "SELECT pg_sleep(?)"
        statements = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        long_form = ("SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = "
                     "o.customer WHERE o.customer = ? AND o.status IN (?) ORDER BY o.id DESC "
                     "LIMIT ?")
        assert any(long_form.startswith(s.rstrip("…")) for s in statements)
        row = next(i for i, s in enumerate(statements) if long_form.startswith(s.rstrip("…")))
        assert str(table.get_row_at(row)[0]) == "2"  # two SELECTs, one form
        await pilot.press("down")
        await pilot.press("enter")  # the slowest exchange of that form
        await until(pilot, lambda: isinstance(app.screen, ExchangeDetail), "its exchange")
