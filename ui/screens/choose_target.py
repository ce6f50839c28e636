"""ChooseTarget: pick one of a service's targets for something other than switching (replay)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from .. import display


class ChooseTarget(ModalScreen[str | None]):
    """Dismisses with a target name, or None."""

    BINDINGS = [Binding("escape,q", "cancel", "Cancel")]

    def __init__(
        self, title: str, targets: Sequence[Mapping[str, Any]], exclude: str | None = None
    ) -> None:
        super().__init__()
        self.heading = title
        self.targets = [t for t in targets if t["name"] != exclude]

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-target", classes="picker"):
            yield Label(self.heading, id="choose-title")
            yield OptionList(
                *(
                    Option(
                        Text.assemble(
                            (f"{t['name']}  ", "bold"),
                            (f"{t.get('kind', '')}  ", "dim"),
                            (t.get("state", ""), display.state_style(t.get("state", ""))),
                        ),
                        id=t["name"],
                    )
                    for t in self.targets
                ),
                id="choose-options",
            )
            yield Label("↑↓ Enter choose · Esc cancel", classes="picker-help")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
