"""EngineDied: says plainly that the engine is gone and offers to restart it or quit."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class EngineDied(ModalScreen[str]):
    """Dismisses with "restart" or "quit"."""

    BINDINGS = [
        Binding("r", "choose('restart')", "Restart engine"),
        Binding("q,escape", "choose('quit')", "Quit"),
    ]

    def __init__(self, reason: str, *, can_restart: bool) -> None:
        super().__init__()
        self.reason = reason
        self.can_restart = can_restart

    def compose(self) -> ComposeResult:
        with Vertical(id="engine-died"):
            yield Label("The engine stopped", id="engine-died-title")
            yield Static(self.reason, id="engine-died-reason", markup=False)
            if self.can_restart:
                yield Static("Your services are not proxied until it runs again.")
            else:
                yield Static("Start it again (devamb up --detach), then run devamb attach.")
            with Horizontal(id="engine-died-buttons"):
                if self.can_restart:
                    yield Button("Restart engine (r)", id="restart", variant="primary")
                yield Button("Quit (q)", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id or "quit")

    def action_choose(self, choice: str) -> None:
        if choice == "restart" and not self.can_restart:
            return
        self.dismiss(choice)
