"""DiffScreen: how the same request was answered by two targets (`replay(..., diff=True)`).

Rows are the engine's differences — `{path, left, right, change}` over status, error, headers
and JSON body fields — with volatile headers (Date, request ids) already left out by the engine.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from .. import display

CHANGE_STYLES = {"changed": "yellow", "added": "green", "removed": "red"}


def shown(value: Any) -> Text:
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, str):
        return Text(value)
    return Text(json.dumps(value, ensure_ascii=False))


def diff_table(differences: list[dict[str, Any]], left: str, right: str) -> Table:
    table = Table(expand=True, show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("Where", style="bold", no_wrap=True, ratio=2)
    table.add_column(left, ratio=3, overflow="fold")
    table.add_column(right, ratio=3, overflow="fold")
    for difference in differences:
        change = str(difference.get("change", "changed"))
        style = CHANGE_STYLES.get(change, "")
        mark = {"changed": "~", "added": "+", "removed": "-"}.get(change, "?")
        table.add_row(
            Text(mark, style=f"bold {style}"),
            Text(str(difference.get("path", ""))),
            shown(difference.get("left")),
            shown(difference.get("right")),
        )
    return table


def side_text(label: str, summary: dict[str, Any]) -> Text:
    status, error = summary.get("status"), summary.get("error")
    return Text.assemble(
        (f"{label}: ", "bold"),
        (f"#{summary.get('id')} ", "dim"),
        f"{summary.get('target', '?')}  ",
        (str(status) if status is not None else "no response",
         display.status_style(status, error)),
        f"  {display.duration(summary.get('duration_ms'))}",
    )  # fmt: skip


class DiffScreen(Screen[None]):
    """The original exchange on the left, its replay on another target on the right."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(
        self, original: dict[str, Any], replay: dict[str, Any], differences: list[dict[str, Any]]
    ) -> None:
        super().__init__()
        self.original = original
        self.replay = replay
        self.differences = differences

    def compose(self) -> ComposeResult:
        left = f"{self.original.get('target', 'left')} (original)"
        right = f"{self.replay.get('target', 'right')} (replay)"
        yield Header()
        with VerticalScroll(id="diff"):
            yield Static(
                Text.assemble(
                    Text(f"{self.original.get('method', '')} {self.original.get('path', '')}",
                         style="bold"),
                    "\n", side_text("left ", self.original),
                    "\n", side_text("right", self.replay),
                ),
                id="diff-sides",
            )  # fmt: skip
            if self.differences:
                count = len(self.differences)
                section = Static(diff_table(self.differences, left, right), classes="diff-section")
                section.border_title = f"{count} difference{'s' if count != 1 else ''}"
            else:
                section = Static(
                    Text("The two answers are the same (volatile headers ignored).",
                         style="bold green"),
                    classes="diff-section",
                )  # fmt: skip
                section.border_title = "No differences"
            yield section
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Diff of exchange #{self.original.get('id')}"
        self.sub_title = f"{self.original.get('target')} ↔ {self.replay.get('target')}"
        self.query_one("#diff").focus()
