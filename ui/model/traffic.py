"""A bounded, filterable record of the exchanges the TUI has seen."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from devamb.control.protocol import ExchangeSummary

DEFAULT_CAPACITY = 5000


class TrafficStore:
    """The most recent exchanges, oldest first, at most `capacity` of them.

    Memory stays bounded however fast the engine sends: older exchanges fall off the front.
    `serial` counts every exchange ever added, so a view can tell how many arrived since it
    last looked, even when some of them have already fallen off.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._exchanges: deque[ExchangeSummary] = deque(maxlen=capacity)
        self.serial = 0

    def __len__(self) -> int:
        return len(self._exchanges)

    def add(self, exchanges: Iterable[ExchangeSummary]) -> int:
        """Append exchanges; returns how many were added."""
        before = self.serial
        for exchange in exchanges:
            self._exchanges.append(exchange)
            self.serial += 1
        return self.serial - before

    def clear(self) -> None:
        self._exchanges.clear()

    def select(self, service: str | None = None) -> list[ExchangeSummary]:
        """The stored exchanges (of one service, when given), oldest first."""
        if service is None:
            return list(self._exchanges)
        return [exchange for exchange in self._exchanges if exchange["service"] == service]
