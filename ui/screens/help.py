"""HelpScreen: what every key does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("?", "this help"),
            ("ctrl+p", "command palette: Switch <service> → <target>, themes"),
            ("ctrl+t", "light / dark theme"),
            ("d / x", "dashboard / traffic"),
            ("q", "quit (stops the engine if this TUI started it)"),
        ],
    ),
    (
        "Dashboard",
        [
            ("↑ ↓", "select a service"),
            ("t or Enter", "switch the selected service's target"),
            ("f", "faults of the selected service (space on/off, a add, del remove, c clear)"),
            ("i", "detail of the active target (pool endpoints, containers, mock routes, shards)"),
            ("R", "record the service's exchanges as mocks / stop and write the file"),
            ("s", "slowest statements of the service: SQL, Redis commands normalised, p50/p99 "
                  "(Enter opens the slowest exchange, r refreshes)"),
        ],
    ),
    (
        "Target picker",
        [
            ("↑ ↓ Enter", "choose a target"),
            ("1-9", "choose by number"),
            ("i", "detail of the highlighted target"),
            ("Esc", "cancel"),
        ],
    ),
    (
        "Traffic",
        [
            ("space", "pause / follow new exchanges"),
            ("f", "filter: next service (or use the drop-down)"),
            ("↑ ↓ PgUp PgDn", "move (moving up pauses)"),
            ("Enter", "exchange detail (Esc to go back)"),
            ("c", "clear this list and the engine's record"),
            ("/", "filter expression: ~c 5xx & ~s payments (Enter apply, Esc close)"),
        ],
    ),
    (
        "Exchange detail",
        [
            ("r", "replay to its own target"),
            ("d", "replay to another target and diff the answers"),
            ("e", "export: curl of this exchange, HAR of the current filter"),
        ],
    ),
    (
        "Faults · target detail",
        [
            ("space", "turn the selected fault on / off"),
            ("a / del / c", "add a fault / remove it / clear all"),
            ("s", "start / stop the selected scenario"),
            ("l", "container logs (docker targets)"),
        ],
    ),
]


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=14)
    table.add_column()
    for index, (section, rows) in enumerate(KEYS):
        if index:
            table.add_row("", "")
        table.add_row(f"[u]{section}[/u]", "")
        for key, what in rows:
            table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(keys_table())

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "devamb keys"
        self.query_one("#help").border_subtitle = "Esc to close"
