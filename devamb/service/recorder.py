"""Opens and closes exchange records: counters, the store and the event bus in one place."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from devamb.control.bus import EventBus
from devamb.control.events import ExchangeCompleted
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.replay import new_token
from devamb.inspect.store import ExchangeStore

if TYPE_CHECKING:
    from devamb.service.core import Service


class Recorder:
    def __init__(self, store: ExchangeStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._ids = itertools.count(1)
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
        service.counters.finished(
            exchange.duration_ms or 0.0, failed, exchange.bytes_in, exchange.bytes_out,
            exchange.target, "mirror_of" in exchange.notes,
        )
        self.store.add(exchange)
        for watch in self.watchers:
            watch(service, exchange)
        if self.bus.has_subscribers:
            summary = service.redaction.summary(exchange)
            self.bus.publish(ExchangeCompleted(summary, exchange))
