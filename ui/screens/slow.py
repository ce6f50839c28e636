"""SlowStatements: a service's slowest statements, normalised (literals made `?`), with counts,
errors and p50/p99/max, from the engine's `slow_statements` (the view of `devamb top`).

It refreshes every two seconds; Enter opens the slowest exchange of the highlighted form."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from .. import display
from ..gateway import EngineCallFailed, EngineGateway

REFRESH_EVERY = 2.0
LIMIT = 20
COLUMNS = [("Count", "count"), ("Err", "errors"), ("p50", "p50"), ("p99", "p99"),
           ("Max", "max"), ("Total", "total"), ("Statement", "statement")]  # fmt: skip
NUMBERS_WIDTH = 52  # the columns before the statement, with their padding


def cells(row: dict[str, Any], width: int) -> list[Text]:
    """A row's cells, the statement cut to `width` characters."""
    statement = str(row["statement"])
    if len(statement) > width:
        statement = statement[: width - 1] + "…"
    numbers = [str(row["count"]), str(row["errors"] or ""), display.duration(row["p50_ms"]),
               display.duration(row["p99_ms"]), display.duration(row["max_ms"]),
               display.duration(row["total_ms"])]  # fmt: skip
    out = [Text(n, justify="right") for n in numbers]
    out[1].stylize("bold red")
    return [*out, Text(statement)]


class SlowStatements(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "refresh_view", "Refresh"),
    ]

    def __init__(self, gateway: EngineGateway, service: str) -> None:
        super().__init__()
        self.gateway = gateway
        self.service = service
        self.view: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="slow-summary")
        table: DataTable[Text] = DataTable(id="slow-table", cursor_type="row", zebra_stripes=True)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.service}: slowest statements"
        self.sub_title = "normalised: literals → ?, by p99"
        self.query_one(DataTable).focus()
        self.refresh_view()
        self.set_interval(REFRESH_EVERY, self.refresh_view)

    def action_refresh_view(self) -> None:
        self.refresh_view()

    @work(exclusive=True, group="slow-refresh")
    async def refresh_view(self) -> None:
        try:
            view = await self.gateway.call(
                lambda engine: engine.slow_statements(self.service, LIMIT))
        except EngineCallFailed as failure:
            self.query_one("#slow-summary", Static).update(failure.text)
            return
        if view != self.view:
            self.show(view)

    def show(self, view: dict[str, Any]) -> None:
        self.view = view
        rows = view.get("slowest") or []
        summary = (f"{view['statements']} statements recorded, {view['forms']} forms; "
                   f"the {len(rows)} slowest by p99" if rows else
                   "no statements recorded yet (SQL, Redis commands, HTTP requests)")
        self.query_one("#slow-summary", Static).update(summary)
        table: DataTable[Text] = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for index, row in enumerate(rows):
            table.add_row(*cells(row, max(20, self.size.width - NUMBERS_WIDTH)), key=str(index))
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    @on(DataTable.RowSelected, "#slow-table")
    def _open_slowest(self, event: DataTable.RowSelected) -> None:
        event.stop()
        rows = (self.view or {}).get("slowest") or []
        if not 0 <= event.cursor_row < len(rows):
            return
        exchange_id = rows[event.cursor_row].get("slowest_id")
        if exchange_id is not None:
            self.run_worker(self._open(int(exchange_id)), group="slow-open")

    async def _open(self, exchange_id: int) -> None:
        try:
            full = await self.gateway.call(lambda engine: engine.exchange(exchange_id))
        except EngineCallFailed as failure:
            self.notify(failure.text, title="Exchange", severity="warning")
            return
        opener = getattr(self.app, "exchange_screen", None)
        if opener is not None:
            self.app.push_screen(opener(full))
