"""EventsLog: the engine's notices, switches and errors as one line each (never a traceback)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from ui import display

LEVEL_STYLES = {
    "info": "dim",
    "switch": "bold cyan",
    "fault": "bold magenta",
    "warning": "yellow",
    "error": "bold red",
}
MAX_LINES = 500


class EventsLog(RichLog):
    """A bounded log; `add(level, text)` appends one line."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, wrap=True, markup=False, auto_scroll=True)
        self.border_title = "Events"

    def add(self, level: str, text: str, when: float | None = None) -> None:
        stamp = display.clock(when if when is not None else time.time())[:8]
        line = Text.assemble(
            (stamp, "dim"),
            " ",
            (f"{level:<7}", LEVEL_STYLES.get(level, "")),
            " ",
            " ".join(text.split()),  # one line per event, whatever the engine sent
        )
        self.write(line)
