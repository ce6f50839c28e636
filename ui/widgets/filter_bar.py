"""FilterBar: the traffic list's filter expression (`/`), in the engine's filter language.

It posts `FilterBar.Applied` with the expression (empty: no filter); whoever applies it asks the
engine and answers with `show_error()` (the engine's message, whose last lines put a caret
under the offending column) or `show_ok()`.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

HINT = "~m METHOD  ~u REGEX  ~c 5xx  ~s SERVICE  ~t TARGET  ~h/~b REGEX  ~e  ~d >500ms  ! & | ( )"


class FilterBar(Vertical):
    """Hidden until opened; Enter applies, Esc closes (keeping the applied filter)."""

    BINDINGS = [Binding("escape", "close", "Close filter", show=False)]

    class Applied(Message):
        def __init__(self, bar: FilterBar, expression: str) -> None:
            super().__init__()
            self.bar = bar
            self.expression = expression

        @property
        def control(self) -> FilterBar:
            return self.bar

    class Closed(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.applied = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter, e.g. ~c 5xx & ~s payments", id="filter-input",
                    compact=True)  # fmt: skip
        yield Static(Text(HINT, style="dim"), id="filter-message")

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    def open(self) -> None:
        self.display = True
        self.input.value = self.applied
        self.input.focus()

    def action_close(self) -> None:
        self.display = False
        self.post_message(self.Closed())

    def show_error(self, message: str) -> None:
        """The engine's message as it is: its caret lines line up with the expression."""
        lines = message.splitlines()
        text = Text(lines[0] if lines else message, style="bold red")
        for line in lines[1:]:
            text.append("\n" + line, style="red" if line.strip() == "^" else "")
        self.query_one("#filter-message", Static).update(text)
        self.add_class("-error")

    def show_ok(self, expression: str, count: int) -> None:
        self.applied = expression
        self.remove_class("-error")
        shown = f"{count} matching" if expression else "no filter"
        self.query_one("#filter-message", Static).update(
            Text.assemble((f"✓ {shown}", "green"), "  ", (HINT, "dim"))
        )

    @on(Input.Submitted, "#filter-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(self, event.value.strip()))
