"""Recent exchanges: a ring per service, and one byte budget for all of them, oldest out first."""

from __future__ import annotations

import heapq
from collections import deque

from devamb.inspect.exchange import Exchange

DEFAULT_KEEP = 5000  # per service
DEFAULT_BUDGET = 64 * 1024 * 1024  # bytes, for every service together


class ExchangeStore:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._rings: dict[str, deque[Exchange]] = {}
        self._keep: dict[str, int] = {}
        self._sizes: dict[int, int] = {}
        self.bytes = 0

    def configure(self, service: str, keep: int) -> None:
        self._keep[service] = keep
        self._rings.setdefault(service, deque())

    def add(self, exchange: Exchange) -> None:
        ring = self._rings.get(exchange.service)
        if ring is None:
            ring = self._rings[exchange.service] = deque()
        ring.append(exchange)
        size = exchange.approx_size()
        self._sizes[exchange.id] = size
        self.bytes += size
        if len(ring) > self._keep.get(exchange.service, DEFAULT_KEEP):
            self._drop(ring.popleft())
        while self.bytes > self.budget and self._evict_oldest():
            pass

    def _drop(self, exchange: Exchange) -> None:
        self.bytes -= self._sizes.pop(exchange.id, 0)

    def _evict_oldest(self) -> bool:
        heads = [(ring[0].id, ring) for ring in self._rings.values() if ring]
        if not heads:
            return False
        _, ring = min(heads, key=lambda pair: pair[0])
        self._drop(ring.popleft())
        return True

    def get(self, exchange_id: int) -> Exchange | None:
        for ring in self._rings.values():
            if ring and ring[0].id <= exchange_id <= ring[-1].id:
                for exchange in reversed(ring):
                    if exchange.id == exchange_id:
                        return exchange
        return None

    def all(self) -> list[Exchange]:
        """Every kept exchange, oldest first."""
        return list(heapq.merge(*self._rings.values(), key=lambda e: e.id))

    def recent(self, limit: int) -> list[Exchange]:
        """The last `limit` exchanges, oldest first."""
        if limit <= 0:
            return []
        tails = [list(ring)[-limit:] for ring in self._rings.values()]
        return list(heapq.merge(*tails, key=lambda e: e.id))[-limit:]

    def clear(self) -> None:
        for ring in self._rings.values():
            ring.clear()
        self._sizes.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return sum(len(ring) for ring in self._rings.values())
