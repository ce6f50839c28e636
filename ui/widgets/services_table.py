"""ServicesTable: one row per service, updated in place so the cursor never moves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import JustifyMethod
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from devamb.control.protocol import ServiceStats, ServiceStatus

from .. import display

# (key, label, fixed width or None for "fit the content")
COLUMNS: list[tuple[str, str, int | None]] = [
    ("service", "Service", None),
    ("listen", "Listen", None),
    ("protocol", "Proto", None),
    ("target", "Target", None),
    ("state", "State", None),
    ("rate", "Req/s", 5),
    ("p50", "p50", 5),
    ("p99", "p99", 5),
    ("errors", "Err", 4),
    ("faults", "Faults", None),
]
STATIC_KEYS = ("service", "listen", "protocol", "target", "state", "faults")
#: left out when the table would not fit otherwise (an 80-column terminal with long states)
SPARE_COLUMN = "protocol"


def listen_text(listen: str, listening: bool) -> Text:
    """`:9001` for loopback listeners (the usual case), the full address otherwise."""
    host, _, port = listen.rpartition(":")
    shown = f":{port}" if host in ("127.0.0.1", "localhost") else listen
    return Text(shown, style="" if listening else "red strike")


def active_state(service: ServiceStatus) -> str:
    for target in service["targets"]:
        if target["name"] == service["target"]:
            return target["state"]
    return "unknown"


def active_via(service: ServiceStatus) -> str | None:
    """The SSH bastion the active target goes through, if any."""
    for target in service["targets"]:
        if target["name"] == service["target"]:
            via = (target.get("details") or {}).get("via")
            return str(via) if via else None
    return None


def faults_text(faults: list[dict[str, Any]]) -> Text:
    enabled = [
        str(fault.get("name", fault.get("kind", "?"))) for fault in faults if fault.get("enabled")
    ]
    if not enabled:
        return Text("—", style="dim")
    return Text("⚡" + ",".join(enabled), style="bold yellow")


def breaker_state(service: ServiceStatus) -> str | None:
    """The active target's circuit breaker state when it is not closed."""
    for target in service["targets"]:
        if target["name"] == service["target"] and "breaker" in target:
            state = str(target["breaker"].get("state", "closed"))
            return None if state == "closed" else state
    return None


def static_cells(service: ServiceStatus, recording: bool = False) -> dict[str, Text]:
    state = active_state(service)
    name = Text(service["name"], style="bold")
    if recording:
        name.append(" ●REC", style="bold red")
    breaker = breaker_state(service)
    state_text = Text(state, style=display.state_style(state))
    if breaker is not None:
        state_text.append(f" ⊘breaker {breaker}", style="bold red")
    target = Text(service["target"], style="bold")
    via = active_via(service)
    if via is not None:  # through an SSH bastion (its state: the target detail, `status`)
        target.append(f" via {via}", style="dim")
    return {
        "service": name,
        "listen": listen_text(service["listen"], service.get("listening", True)),
        "protocol": Text(service["protocol"]),
        "target": target,
        "state": state_text,
        "faults": faults_text(service["faults"]),
    }


def stats_cells(stats: ServiceStats) -> dict[str, Text]:
    error_style = (
        "red" if stats["error_rate"] >= 0.05 else ("yellow" if stats["error_rate"] else "")
    )
    return {
        "rate": Text(display.rate(stats["rate"]), justify="right"),
        "p50": Text(display.duration(stats["p50_ms"]), justify="right"),
        "p99": Text(display.duration(stats["p99_ms"]), justify="right"),
        "errors": Text(display.percent(stats["error_rate"]), justify="right", style=error_style),
    }


class ServicesTable(DataTable[Text]):
    """The dashboard's services table. Rows are keyed by service name."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._names: list[str] = []
        self._services: list[ServiceStatus] = []
        self._compact = False  # SPARE_COLUMN left out, for want of room
        self.recording: set[str] = set()  # services whose exchanges are being recorded

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label, width in self._columns():
            justify: JustifyMethod = "right" if width else "left"
            self.add_column(Text(label, justify=justify), key=key, width=width)

    def _columns(self) -> list[tuple[str, str, int | None]]:
        return [c for c in COLUMNS if not (self._compact and c[0] == SPARE_COLUMN)]

    def on_resize(self) -> None:
        self._fit(self._services)

    def _fit(self, services: list[ServiceStatus]) -> None:
        """Leave out the spare column when the whole table would not fit, bring it back when
        it would (measured from the cells, so it does not wait for the table's own layout)."""
        available = self.scrollable_content_region.width
        if not available or not services:
            return
        compact = self._width(services) > available
        if compact != self._compact:
            self._compact = compact
            self.clear(columns=True)
            self._add_columns()
            self._names = []
            self._rebuild(services)

    def _width(self, services: list[ServiceStatus]) -> int:
        """The width all COLUMNS need for these services, padding included."""
        rows = [
            static_cells(s, s["name"] in self.recording) | stats_cells(s["stats"])
            for s in services
        ]
        return sum(
            (width or max([len(label), *(row[key].cell_len for row in rows)]))
            + 2 * self.cell_padding
            for key, label, width in COLUMNS
        )

    @property
    def selected_service(self) -> str | None:
        if not self._names or self.cursor_row < 0:
            return None
        try:
            return self._names[self.cursor_row]
        except IndexError:
            return None

    def show(self, services: list[ServiceStatus]) -> None:
        """Show the services: cells change in place; rows are rebuilt only when services do."""
        self._services = services
        names = [service["name"] for service in services]
        if names != self._names:
            self._rebuild(services)
            self._fit(services)
            return
        for service in services:
            recording = service["name"] in self.recording
            for key, value in static_cells(service, recording).items():
                if key in self.columns:
                    self.update_cell(service["name"], key, value, update_width=True)
            self._update_stats(service["name"], service["stats"])
        self._fit(services)

    def show_stats(self, stats: Mapping[str, ServiceStats]) -> None:
        for name, sample in stats.items():
            self._update_stats(name, sample)

    def _update_stats(self, name: str, stats: ServiceStats) -> None:
        if name not in self._names:
            return
        try:
            for key, value in stats_cells(stats).items():
                self.update_cell(name, key, value)
        except RowDoesNotExist:
            pass

    def _rebuild(self, services: list[ServiceStatus]) -> None:
        selected = self.selected_service
        self.clear()
        self._names = [service["name"] for service in services]
        for service in services:
            recording = service["name"] in self.recording
            cells = static_cells(service, recording) | stats_cells(service["stats"])
            self.add_row(*(cells[key] for key, _, _ in self._columns()), key=service["name"])
        if selected in self._names:
            self.move_cursor(row=self._names.index(selected))
