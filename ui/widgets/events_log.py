"""EventsLog: the engine's notices, switches and errors as one line each (never a traceback)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import RichLog

from .. import display

LEVEL_STYLES = {
    "info": "dim",
    "switch": "bold cyan",
    "fault": "bold magenta",
    "warning": "yellow",
    "error": "bold red",
}
MAX_LINES = 500
INDENT = 17  # under the message, past the time and the level


class EventsLog(RichLog):
    """A bounded log; `add(level, text)` appends one line."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, wrap=True, markup=False, auto_scroll=True)
        self.border_title = "Events"

    def add(self, level: str, text: str, when: float | None = None) -> None:
        """One event; a message of several lines (a rejected profile's problems, each
        FILE:LINE:COL: message) continues indented under the first."""
        stamp = display.clock(when if when is not None else time.time())[:8]
        first, *more = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
        self.write(
            Text.assemble(
                (stamp, "dim"), " ", (f"{level:<7}", LEVEL_STYLES.get(level, "")), " ", first
            )
        )
        for line in more:
            self.write(Text(" " * INDENT + line))
