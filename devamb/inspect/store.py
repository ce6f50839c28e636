"""The ring buffer of recent exchanges: bounded, oldest out first."""

from __future__ import annotations

from collections import deque

from devamb.inspect.exchange import Exchange

DEFAULT_KEEP = 5000


class ExchangeStore:
    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._items: deque[Exchange] = deque(maxlen=keep)

    def add(self, exchange: Exchange) -> None:
        self._items.append(exchange)

    def recent(self, limit: int) -> list[Exchange]:
        """The last `limit` exchanges, oldest first."""
        if limit <= 0:
            return []
        n = len(self._items)
        return [self._items[i] for i in range(max(0, n - limit), n)]

    def __len__(self) -> int:
        return len(self._items)
