"""BastionsPanel: each SSH bastion of the profile (devamb status's `bastions`) on one line:
its state (and why it is down, in red: a host key mismatch with both fingerprints), round
trip, channels, bytes and the last error. Hidden when the profile has no bastions."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from .. import display

STATE_STYLES = {"up": "green", "down": "bold red", "connecting": "yellow", "idle": "dim"}


def bastion_lines(bastion: dict[str, Any]) -> list[Text]:
    """The bastion's line (cut to the width, its address last), and under it why it is down
    or its last error (wrapped: a host key mismatch's fingerprints are never cut off)."""
    state = str(bastion.get("state", "?"))
    rtt = bastion.get("rtt_ms")
    line = Text.assemble(
        (str(bastion.get("name", "?")), "bold"), "  ", (state, STATE_STYLES.get(state, "")),
        f" · rtt {'-' if rtt is None else f'{rtt:.1f} ms'}",
        f" · {int(bastion.get('channels', 0))} open ({int(bastion.get('channels_total', 0))}"
        " in all)",
        f" · ↑{display.size(int(bastion.get('bytes_out', 0)))}"
        f" ↓{display.size(int(bastion.get('bytes_in', 0)))}",
        "  ", (str(bastion.get("address", "")), "dim"),
        no_wrap=True, overflow="ellipsis",
    )
    lines = [line]
    if bastion.get("reason"):
        lines.append(Text(f"  {bastion['reason']}", style="red"))
    elif bastion.get("last_error"):
        lines.append(Text(f"  last error: {bastion['last_error']}", style="dim"))
    return lines


def bastions_view(bastions: list[dict[str, Any]]) -> Group:
    return Group(*(line for b in bastions for line in bastion_lines(b)))


class BastionsPanel(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "SSH bastions"
        self.display = False
        self._shown: list[dict[str, Any]] | None = None

    def show(self, bastions: list[dict[str, Any]]) -> None:
        if bastions == self._shown:
            return
        self._shown = [dict(b) for b in bastions]
        self.display = bool(bastions)
        self.update(bastions_view(bastions))
