"""TargetPicker: choose where one service routes (arrows + Enter, or the digits 1-9)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from devamb.control.protocol import ServiceStatus, TargetStatus

from .. import display
from ..messages import OpenTargetDetail


def target_prompt(number: int, target: TargetStatus, widths: tuple[int, int, int]) -> Text:
    name_w, kind_w, address_w = widths
    marker = ("● ", "bold green") if target["active"] else ("  ", "")
    return Text.assemble(
        (f"{number} " if number <= 9 else "  ", "bold"),
        marker,
        (f"{target['name']:<{name_w}}  ", "bold"),
        (f"{target['kind']:<{kind_w}}  ", "dim"),
        f"{target['address'][:address_w]:<{address_w}}  ",
        (target["state"], display.state_style(target["state"])),
    )


class TargetPicker(ModalScreen[str | None]):
    """Dismisses with the chosen target's name, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss_picker", "Cancel"),
        Binding("i", "target_detail", "Detail"),
        *(Binding(str(digit), f"choose({digit})", show=False) for digit in range(1, 10)),
    ]

    def __init__(self, service: ServiceStatus) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        targets = self.service["targets"]
        name_w = max((len(t["name"]) for t in targets), default=4)
        kind_w = max((len(t["kind"]) for t in targets), default=4)
        address_w = min(40, max((len(t["address"]) for t in targets), default=8))
        with Vertical(id="picker"):
            yield Label(
                Text.assemble(
                    "Switch ",
                    (self.service["name"], "bold"),
                    f" (listening on {self.service['listen']}) to…",
                ),
                id="picker-title",
            )
            yield OptionList(
                *(
                    Option(
                        target_prompt(index, target, (name_w, kind_w, address_w)), id=target["name"]
                    )
                    for index, target in enumerate(targets, start=1)
                ),
                id="picker-options",
            )
            yield Label("↑↓ Enter choose · 1-9 pick · i detail · Esc cancel", id="picker-help")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        names = [target["name"] for target in self.service["targets"]]
        if self.service["target"] in names:
            options.highlighted = names.index(self.service["target"])
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_choose(self, number: int) -> None:
        targets = self.service["targets"]
        if 1 <= number <= len(targets):
            self.dismiss(targets[number - 1]["name"])

    def action_target_detail(self) -> None:
        """Open the highlighted target's detail instead of switching to it."""
        highlighted = self.query_one(OptionList).highlighted
        targets = self.service["targets"]
        if highlighted is not None and 0 <= highlighted < len(targets):
            name = targets[highlighted]["name"]
            self.app.post_message(OpenTargetDetail(self.service["name"], name))
        self.dismiss(None)

    def action_dismiss_picker(self) -> None:
        self.dismiss(None)
