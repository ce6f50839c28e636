"""FaultsScreen: one service's faults (on/off, kind, probability, settings, fired) and scenarios.

It reads and changes faults only through the app's `EngineGateway`. The app forwards "faults"
events with `show_faults()`; a one-second poll keeps the fired counts and the scenarios' progress
current.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from devamb.control.protocol import EngineControl
from devamb.profile.units import DURATION_SETTINGS, SIZE_SETTINGS, format_setting

from .. import display
from ..gateway import EngineCallFailed, EngineGateway
from ..widgets.keys_footer import KeysFooter
from .fault_form import FaultForm

REFRESH_EVERY = 1.0

FAULT_COLUMNS = [("on", "On"), ("name", "Name"), ("kind", "Kind"), ("probability", "Prob"),
                 ("fired", "Fired"), ("settings", "Settings")]  # fmt: skip
SCENARIO_COLUMNS = [("state", "State"), ("name", "Scenario"), ("progress", "Progress"),
                    ("rounds", "Rounds"), ("elapsed", "Elapsed")]  # fmt: skip


def _value(value: Any, key: str = "") -> str:
    if key in (*DURATION_SETTINGS, *SIZE_SETTINGS):  # as typed: 200ms, not 0.2
        return format_setting(key, value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    if isinstance(value, float):
        return str(int(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def settings_text(fault: dict[str, Any]) -> str:
    """`delay=300ms jitter=50ms · POST /charge* · times=3` — what the fault does, briefly."""
    params = fault.get("params") or {}
    parts = [f"{k}={_value(v, k)}" for k, v in params.items() if v not in (None, "", {}, 0.0)]
    if fault.get("direction", "downstream") != "downstream":
        parts.append(f"direction={fault['direction']}")
    extra = [
        f"{key}={_value(fault[key], key)}" for key in ("times", "after", "for") if fault.get(key)
    ]
    if fault.get("match"):
        extra.insert(0, str(fault["match"]))
    return " · ".join(part for part in (" ".join(parts), *extra) if part) or "—"


def fault_cells(fault: dict[str, Any]) -> list[Text]:
    enabled = bool(fault.get("enabled"))
    fired, seen = int(fault.get("fired") or 0), int(fault.get("seen") or 0)
    return [
        Text("● on" if enabled else "○ off", style="bold green" if enabled else "dim"),
        Text(str(fault.get("name", "?")), style="bold"),
        Text(str(fault.get("kind", "?"))),
        Text(f"{float(fault.get('probability', 1.0)):.0%}", justify="right"),
        Text(f"{fired}/{seen}" if seen else str(fired), justify="right",
             style="bold yellow" if fired else ""),
        Text(settings_text(fault)),
    ]  # fmt: skip


def scenario_cells(scenario: dict[str, Any]) -> list[Text]:
    running = bool(scenario.get("running"))
    step, steps = int(scenario.get("step") or 0), int(scenario.get("steps") or 0)
    elapsed = scenario.get("elapsed")
    return [
        Text("▶ running" if running else "■ stopped", style="bold green" if running else "dim"),
        Text(str(scenario.get("name", "?")), style="bold"),
        Text(f"step {step}/{steps}" + (" (loop)" if scenario.get("loop") else "")),
        Text(str(scenario.get("rounds") or 0), justify="right"),
        Text(display.duration(elapsed * 1000) if elapsed is not None else "—", justify="right"),
    ]


class FaultsScreen(Screen[None]):
    """Faults of one service; space toggles, a adds, delete removes, c clears, s runs scenarios."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("space", "toggle_fault", "On/off"),
        Binding("a", "add", "Add"),
        Binding("delete,backspace", "remove", "Remove"),
        Binding("c", "clear", "Clear all"),
        Binding("s", "scenario", "Start/stop scenario"),
        Binding("tab", "app.focus_next", "Next table", show=False),
    ]

    def __init__(self, gateway: EngineGateway, service: str, protocol: str = "http") -> None:
        super().__init__()
        self.gateway = gateway
        self.service = service
        self.protocol = protocol
        self.faults: list[dict[str, Any]] = []
        self.scenarios: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="faults-body"):
            faults: DataTable[Text] = DataTable(
                id="faults-table", cursor_type="row", zebra_stripes=False
            )
            faults.border_title = f"Faults of {self.service}"
            faults.border_subtitle = "space on/off · a add · del remove · c clear"
            yield faults
            yield Static("", id="faults-message")
            scenarios: DataTable[Text] = DataTable(
                id="scenarios-table", cursor_type="row", zebra_stripes=False
            )
            scenarios.border_title = "Scenarios"
            scenarios.border_subtitle = "s start/stop"
            yield scenarios
        yield KeysFooter()

    def on_mount(self) -> None:
        self.title = f"Faults · {self.service}"
        for table, columns in (
            (self.query_one("#faults-table", DataTable), FAULT_COLUMNS),
            (self.query_one("#scenarios-table", DataTable), SCENARIO_COLUMNS),
        ):
            for key, label in columns:
                table.add_column(label, key=key)
        self.query_one("#faults-table").focus()
        self.refresh_from_engine()
        self.set_interval(REFRESH_EVERY, self.refresh_from_engine)

    # -- data ----------------------------------------------------------------------------------

    @work(exclusive=True, group="faults-refresh")
    async def refresh_from_engine(self) -> None:
        try:
            faults = await self.gateway.call(lambda engine: engine.faults(self.service))
            scenarios = await self.gateway.call(lambda engine: engine.scenarios())
        except EngineCallFailed as failure:
            self.say(failure.text, error=True)
            return
        self.show_faults(faults.get(self.service, []))
        self.show_scenarios(scenarios)

    def show_faults(self, faults: list[dict[str, Any]]) -> None:
        self.faults = list(faults)
        self._fill(self.query_one("#faults-table", DataTable),
                   [(str(f.get("name")), fault_cells(f)) for f in self.faults])  # fmt: skip
        if not self.faults:
            self.say("No faults. Press a to add one.")

    def show_scenarios(self, scenarios: list[dict[str, Any]]) -> None:
        self.scenarios = list(scenarios)
        self._fill(self.query_one("#scenarios-table", DataTable),
                   [(str(s.get("name")), scenario_cells(s)) for s in self.scenarios])  # fmt: skip

    @staticmethod
    def _fill(table: DataTable[Text], rows: list[tuple[str, list[Text]]]) -> None:
        """Update cells in place when the rows are the same; rebuild otherwise (cursor kept)."""
        keys = [key for key, _ in rows]
        if keys == [str(row.value) for row in table.rows]:
            for key, cells in rows:
                for column, cell in zip(table.columns, cells, strict=False):
                    table.update_cell(key, column, cell, update_width=True)
            return
        cursor = table.cursor_row
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))

    def say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#faults-message", Static)
        message.update(Text(text, style="bold red" if error else "dim"))

    def _selected(self, table_id: str, items: list[dict[str, Any]]) -> dict[str, Any] | None:
        table = self.query_one(table_id, DataTable)
        if not items or not 0 <= table.cursor_row < len(items):
            return None
        return items[table.cursor_row]

    @property
    def selected_fault(self) -> dict[str, Any] | None:
        return self._selected("#faults-table", self.faults)

    @property
    def selected_scenario(self) -> dict[str, Any] | None:
        return self._selected("#scenarios-table", self.scenarios)

    # -- actions -------------------------------------------------------------------------------

    async def _call(self, what: str, request: Callable[[EngineControl], Awaitable[None]]) -> bool:
        try:
            await self.gateway.call(request)
        except EngineCallFailed as failure:
            self.say(f"{what}: {failure.text}", error=True)
            return False
        self.say(what)
        self.refresh_from_engine()
        return True

    @work(group="faults-change")
    async def action_toggle_fault(self) -> None:
        fault = self.selected_fault
        if fault is None:
            return
        enabled = not fault.get("enabled")
        name = str(fault["name"])
        await self._call(f"{name} {'on' if enabled else 'off'}",
                         lambda engine: engine.set_fault(self.service, name, enabled))  # fmt: skip

    @work(group="faults-change")
    async def action_remove(self) -> None:
        fault = self.selected_fault
        if fault is not None:
            name = str(fault["name"])
            await self._call(
                f"{name} removed", lambda engine: engine.remove_fault(self.service, name)
            )

    @work(group="faults-change")
    async def action_clear(self) -> None:
        if self.faults:
            await self._call("all faults removed", lambda engine: engine.clear_faults(self.service))

    @work(group="faults-change")
    async def action_scenario(self) -> None:
        scenario = self.selected_scenario
        if scenario is None:
            self.say("No scenarios in the profile.")
            return
        name = str(scenario["name"])
        if scenario.get("running"):
            await self._call(f"scenario {name} stopped", lambda engine: engine.stop_scenario(name))
        else:
            await self._call(f"scenario {name} started", lambda engine: engine.start_scenario(name))

    def action_add(self) -> None:
        def added(fault: dict[str, Any] | None) -> None:
            if fault is not None:
                self.say(f"{fault.get('name')} added")
                self.refresh_from_engine()

        self.app.push_screen(FaultForm(self.gateway, self.service, self.protocol), added)

    @on(DataTable.RowSelected, "#faults-table")
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_toggle_fault()
