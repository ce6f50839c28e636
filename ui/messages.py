"""Messages that carry the engine's news (and the user's requests) up to the app.

The feed posts the engine-side ones; widgets and screens post `SwitchRequested`. High-rate
messages coalesce (toolong's pattern): a newer `StatsUpdated` or `TrafficPending` still waiting
in the queue replaces an older one, so a busy engine never floods the UI.

`when` is the engine's unix time of an event (None: now). It is not called `time`: Textual's
`Message.time` is the framework's own timestamp of every message, not to be overwritten.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from devamb.control.protocol import ServiceStats


class StatsUpdated(Message):
    """The engine's periodic counters (twice a second); only the newest one matters."""

    def __init__(self, services: dict[str, ServiceStats]) -> None:
        super().__init__()
        self.services = services

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsUpdated)


class TrafficPending(Message):
    """New exchanges wait in the feed's buffer; the handler takes them all at once."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TrafficPending)


class TargetSwitched(Message):
    """The engine re-pointed a service (whoever asked: this TUI, the CLI, a script)."""

    def __init__(
        self, service: str, target: str, previous: str | None, when: float | None = None
    ) -> None:
        super().__init__()
        self.service = service
        self.target = target
        self.previous = previous
        self.when = when


class FaultsChanged(Message):
    """A service's faults were added, removed, toggled or expired."""

    def __init__(
        self, service: str, faults: list[dict[str, Any]], when: float | None = None
    ) -> None:
        super().__init__()
        self.service = service
        self.faults = faults
        self.when = when


class ProfileReloaded(Message):
    """The engine applied a changed profile: services may have come, gone or changed."""

    def __init__(self, added: list[str], removed: list[str], changed: list[str]) -> None:
        super().__init__()
        self.added = added
        self.removed = removed
        self.changed = changed


class EngineNotice(Message):
    """Something the engine wants the developer to know (level: info, warning, error)."""

    def __init__(self, level: str, text: str, when: float | None = None) -> None:
        super().__init__()
        self.level = level
        self.text = text
        self.when = when


class EngineLost(Message):
    """The engine stopped answering: it died, was stopped elsewhere, or its stream broke."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class SwitchRequested(Message):
    """The user chose a target for a service (keys, picker or command palette)."""

    def __init__(self, service: str, target: str) -> None:
        super().__init__()
        self.service = service
        self.target = target


class SwitchCompleted(Message):
    """The engine answered a `SwitchRequested`; `error` is None when it switched."""

    def __init__(self, service: str, target: str, error: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.target = target
        self.error = error


class OpenFaults(Message):
    """Open the faults panel of a service."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service


class OpenSlowStatements(Message):
    """Open a service's slowest statements (the `devamb top` view)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service


class OpenTargetDetail(Message):
    """Open the detail of a service's target (its active one when `target` is None)."""

    def __init__(self, service: str, target: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.target = target


class ToggleRecording(Message):
    """Start recording a service's exchanges as mock routes, or stop and write the file."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service


class TrafficCleared(Message):
    """The user cleared the traffic list: the engine's record should go too."""
