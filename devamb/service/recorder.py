"""Opens and closes exchange records: counters, the store and the event bus in one place."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from devamb.control.bus import EventBus
from devamb.control.events import ExchangeCompleted
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.lazy import LazyExchange
from devamb.inspect.replay import new_token
from devamb.inspect.store import ExchangeStore

if TYPE_CHECKING:
    from devamb.service.core import Service


class Recorder:
    def __init__(self, store: ExchangeStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._ids = itertools.count(1)
        # an id for a record opened without `begin` (a lazy one: see `record_many`)
        self.new_id: Callable[[], int] = self._ids.__next__
        self.replay_token = new_token()  # marks the engine's own replays to its listeners
        self.watchers: list[Callable[[Service, Exchange], None]] = []  # e.g. mock recordings

    def begin(self, service: Service, target: str, client: str | None) -> Exchange:
        service.counters.started()
        limit = service.spec.inspect.bodies
        return Exchange(
            next(self._ids), service.name, target, service.spec.protocol, client or "",
            request_body=BodyPreview(limit), response_body=BodyPreview(limit),
        )

    def finish(self, service: Service, exchange: Exchange) -> None:
        if exchange.duration_ms is None:
            exchange.finish()
        failed = exchange.error is not None or (exchange.status or 0) >= 500
        service.counters.finished(  # (the previews' sizes: bytes_in/out, without two calls)
            exchange.duration_ms or 0.0, failed, exchange.request_body.size,
            exchange.response_body.size, exchange.target, "mirror_of" in exchange.notes,
        )
        self.store.add(exchange)
        for watch in self.watchers:
            watch(service, exchange)
        if self.bus.has_subscribers:
            summary = service.redaction.summary(exchange)
            self.bus.publish(ExchangeCompleted(summary, exchange))

    def record_many(self, service: Service, records: Sequence[LazyExchange]) -> None:
        """Completed lazy records (a wire connection's commands) counted and stored as they
        are; an Exchange is built only when someone reads it (now only for subscribers and
        watchers). Their bytes are the connection record's, not counted again here."""
        counters = service.counters
        run: tuple[float, bool] | None = None
        count = 0
        for lazy in records:  # commands that came and were answered together: counted at once
            key = (lazy.duration_ms, lazy.failed)
            if key != run:
                if run is not None:
                    counters.finished_many(run[0], run[1], count, lazy.origin.target)
                run, count = key, 0
            count += 1
        if run is not None:
            counters.finished_many(run[0], run[1], count, records[0].origin.target)
        self.store.add_lazy(records)
        if self.watchers or self.bus.has_subscribers:
            for lazy in records:
                exchange = lazy.materialise()
                for watch in self.watchers:
                    watch(service, exchange)
                if self.bus.has_subscribers:
                    summary = service.redaction.summary(exchange)
                    self.bus.publish(ExchangeCompleted(summary, exchange))
