"""Opens and closes exchange records: counters, the store and the event bus in one place."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from itertools import groupby, islice
from operator import attrgetter
from typing import TYPE_CHECKING

from devamb.control.bus import EventBus
from devamb.control.events import ExchangeCompleted
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.lazy import LazyExchange, singles
from devamb.inspect.replay import new_token
from devamb.inspect.store import ExchangeStore

if TYPE_CHECKING:
    from devamb.service.core import Service


_RUN_KEY = attrgetter("duration_ms", "failed")


class Held:
    """A listener's records completed while it reads a loop turn's chunks (tcp_follow.Later
    `open`s it): counted and stored together at the turn's end (`Recorder.record_held`), one
    pass through the counters and the store for the turn instead of three calls a record."""

    __slots__ = ("open", "records", "runs")

    def __init__(self) -> None:
        self.open = False
        self.records: list[LazyExchange] = []
        # each record's (duration ms, failed, records it stands for, target)
        self.runs: list[tuple[float, bool, int, str]] = []


class Recorder:
    def __init__(self, store: ExchangeStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._ids = itertools.count(1)
        # an id for a record opened without `begin` (a lazy one: see `record_many`)
        self.new_id: Callable[[], int] = self._ids.__next__
        self.replay_token = new_token()  # marks the engine's own replays to its listeners
        self.watchers: list[Callable[[Service, Exchange], None]] = []  # e.g. mock recordings

    def new_ids(self, count: int) -> int:
        """The first of `count` consecutive ids (a batch of lazy records)."""
        first = self.new_id()
        if count > 1:  # (the last of them taken: the ones between are skipped in C)
            next(islice(self._ids, count - 2, None))
        return first

    def begin(self, service: Service, target: str, client: str | None) -> Exchange:
        service.counters.active += 1  # (started, inline)
        spec = service.spec
        limit = spec.inspect.bodies
        return Exchange(
            next(self._ids), spec.name, target, spec.protocol, client or "",
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

    def record_one(self, service: Service, lazy: LazyExchange, duration_ms: float,
                   failed: bool) -> None:
        """`record_many` for one entry (a lone command's reply, or a batch's replies when all
        took as long and ended alike): the same, with fewer calls."""
        service.counters.finished_many(duration_ms, failed, lazy.count, lazy.origin.target)
        self.store.add_one(lazy)
        if self.watchers or self.bus.has_subscribers:
            self._publish(service, [lazy])

    def one_recorder(self, service: Service, held: Held | None = None,
                     ) -> Callable[[LazyExchange, float, bool], None]:
        """`record_one` for `service`'s records, with what it reads each time bound once (a
        wire connection's, called per completed chunk); while `held` is open, a record waits
        there for `record_held`."""
        finished_one = service.counters.finished_one
        finished_many = service.counters.finished_many
        add_one = self.store.add_one
        watchers = self.watchers  # (changed in place)
        subscribers = self.bus.subscribers  # (changed in place)
        if held is None:
            held = Held()  # (never opened)
        waiting, runs = held.records, held.runs  # (emptied in place)

        def record_one(lazy: LazyExchange, duration_ms: float, failed: bool) -> None:
            count = lazy.count
            if held.open:  # (a turn being read: recorded at its end)
                waiting.append(lazy)
                runs.append((duration_ms, failed, count, lazy.origin.target))
                return
            if count == 1:
                finished_one(duration_ms, failed, lazy.origin.target)
            else:
                finished_many(duration_ms, failed, count, lazy.origin.target)
            add_one(lazy)
            if watchers or subscribers:
                self._publish(service, [lazy])

        return record_one

    def record_held(self, service: Service, held: Held) -> None:
        """The records `held` kept through a turn (one service's), counted and stored as
        `record_one` would have one by one (their samples share one time: the turn's end)."""
        records = held.records
        try:
            service.counters.finished_runs(held.runs)
            self.store.add_lazy(records)
            if self.watchers or self.bus.has_subscribers:
                self._publish(service, records)
        finally:
            records.clear()
            held.runs.clear()

    def _publish(self, service: Service, records: Sequence[LazyExchange]) -> None:
        for lazy in singles(records):
            exchange = lazy.materialise()
            for watch in self.watchers:
                watch(service, exchange)
            if self.bus.has_subscribers:
                summary = service.redaction.summary(exchange)
                self.bus.publish(ExchangeCompleted(summary, exchange))

    def record_many(self, service: Service, records: Sequence[LazyExchange],
                    runs: Sequence[tuple[float, bool, int]] | None = None) -> None:
        """Completed lazy records (a wire connection's commands) counted and stored as they
        are; an Exchange is built only when someone reads it (now only for subscribers and
        watchers). Their bytes are the connection record's, not counted again here. `runs`:
        the records' (duration ms, failed, how many) in runs, when the caller knows them."""
        if not records:
            return
        counters = service.counters
        target = records[0].origin.target
        if runs is None:  # commands that came and were answered together: counted at once
            runs = [(key[0], key[1], len(list(run)))
                    for key, run in groupby(singles(records), key=_RUN_KEY)]
        for duration_ms, failed, count in runs:
            counters.finished_many(duration_ms, failed, count, target)
        self.store.add_lazy(records)
        if self.watchers or self.bus.has_subscribers:
            self._publish(service, records)
