"""Recent exchanges: a ring per service, and one byte budget for all of them, oldest out first.

Exchanges arrive here when they *complete*, which is not the order they started in: a WebSocket
or TCP connection opened early can close long after later requests. So the store keeps two
orders apart:

- eviction goes by completion: each service keeps its last `keep` exchanges to complete, and the
  byte budget drops the earliest completed exchange of any service first;
- lookup goes by id, through a dict beside the rings (never by position), and every list the
  store returns (`all`, `recent`) is in id order, the order the exchanges started.

What an open record holds counts too: a TCP relay side `reserve`s room for its preview as its
first bytes pass (completed records make room), and `release`s it as its record arrives, which
then counts itself; so the budget bounds the previews of long connections while they are open.
A target that answers a TCP client itself (the sharded Redis target) reserves its answer's
preview the same way. Not yet covered: HTTP/1.1 streamed bodies, WebSocket previews, HTTP/2
streams (they count once their record is added).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import itemgetter

from devamb.inspect.exchange import RECORD_OVERHEAD, Exchange
from devamb.inspect.lazy import LazyBatch, LazyExchange, real_at

Entry = Exchange | LazyExchange  # a lazy record is built into its Exchange when read

DEFAULT_KEEP = 5000  # per service
DEFAULT_BUDGET = 64 * 1024 * 1024  # bytes, for every service together
AHEAD_SHARE = 4  # open records reserve ahead at most this part of the budget (1/4)

_KEY = itemgetter(0)


class ExchangeStore:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._rings: dict[str, deque[Entry]] = {}  # per service, in completion order
        self._keep: dict[str, int] = {}
        # by exchange id: every exchange the rings hold (a lazy record is its own entry; a
        # batch is kept under its first id, and in `_batches`)
        # (each record is its own entry: `size`, what it is counted as, and `completed`, its
        # place in the completion order, set on it here; budget eviction drops the lowest)
        self._kept: dict[int, Entry] = {}
        self._batches: dict[int, LazyBatch] = {}  # by first id: the batches `_kept` holds
        self._completed = itertools.count()
        self.bytes = 0
        self.added = 0  # bytes of records kept so far (the engine trims the heap after a burst)
        self._extra: dict[str, int] = {}  # per service: records its batches hold beyond one
        # bytes of open records' previews (a TCP connection's), counted in `bytes` before
        # their records arrive: what a live connection holds is under the budget too
        self.reserved = 0

    def configure(self, service: str, keep: int) -> None:
        self._keep[service] = keep
        self._rings.setdefault(service, deque())

    def add(self, exchange: Entry) -> None:
        """Keep a completed exchange; O(1) apart from the exchanges it pushes out."""
        kept = self._kept
        exchange_id = exchange.id
        if exchange_id in kept:  # the same record twice: keep the first place
            return
        service = exchange.service
        ring = self._rings.get(service)
        if ring is None:
            ring = self._rings[service] = deque()
        size = exchange.size = exchange.approx_size()
        exchange.completed = next(self._completed)
        ring.append(exchange)
        kept[exchange_id] = exchange
        self.bytes += size
        self.added += size
        extra = self._extra
        if len(ring) + (extra.get(service, 0) if extra else 0) > self._keep.get(
                service, DEFAULT_KEEP):
            old = ring.popleft()
            if type(old) is Exchange and kept.get(old.id) is old:  # (_drop, inline)
                del kept[old.id]
                self.bytes -= old.size
            else:
                self._drop(old)
        while self.bytes > self.budget and self._evict_oldest():
            pass

    def add_lazy(self, records: Sequence[LazyExchange]) -> None:
        """Keep completed lazy records (a wire connection's commands: one service, one kind):
        `add`, lean: kept together (each record its own entry, sized once as a record of its
        kind, all of them one completion), then the records they push out dropped."""
        if not records:
            return
        kept = self._kept
        service = records[0].origin.service
        ring = self._rings.get(service)
        if ring is None:
            ring = self._rings[service] = deque()
        append, completed, added = ring.append, next(self._completed), 0
        size = records[0].approx_size()  # (a lazy record's size is its kind's)
        for record in records:
            record_id = record.id
            if record_id in kept:  # the same record twice: keep the first place
                continue
            record.completed = completed
            append(record)
            kept[record_id] = record
            count = record.count
            if count == 1:
                record.size = size
                added += 1
            else:  # a batch: kept under its first id (the others are found in `_batches`)
                record.size = size * count
                self._batches[record_id] = record  # type: ignore[assignment]
                added += count
                self._extra[service] = self._extra.get(service, 0) + count - 1
        added *= size  # (records of one kind: each `size`)
        self.bytes += added
        self.added += added
        excess = len(ring) + self._extra.get(service, 0) - self._keep.get(service, DEFAULT_KEEP)
        if excess > 0:
            popleft, get, freed = ring.popleft, kept.get, 0
            while excess > 0 and ring:
                old = popleft()
                count = old.count if type(old) is not Exchange else 1  # type: ignore[union-attr]
                excess -= count
                if count == 1 and get(old.id) is old:  # (as `_drop`, inline)
                    del kept[old.id]
                    freed += old.size
                else:
                    self._drop(old)
            self.bytes -= freed
        while self.bytes > self.budget and self._evict_oldest():
            pass

    def add_one(self, record: LazyExchange) -> None:
        """`add_lazy` for one entry (a lone command's record, or a batch), leaner."""
        kept = self._kept
        exchange_id = record.id
        if exchange_id in kept:  # the same record twice: keep the first place
            return
        service = record.origin.service
        ring = self._rings.get(service)
        if ring is None:
            ring = self._rings[service] = deque()
        record.completed = next(self._completed)
        ring.append(record)
        kept[exchange_id] = record
        count = record.count
        extra = self._extra
        if count == 1:  # (a lazy record's size: `approx_size`, RECORD_OVERHEAD)
            record.size = size = RECORD_OVERHEAD
            room = self._keep.get(service, DEFAULT_KEEP) - extra.get(service, 0) if extra else (
                self._keep.get(service, DEFAULT_KEEP))
        else:  # a batch (see `add_lazy`)
            record.size = size = RECORD_OVERHEAD * count
            self._batches[exchange_id] = record  # type: ignore[assignment]
            extra[service] = extra.get(service, 0) + count - 1
            room = self._keep.get(service, DEFAULT_KEEP) - extra[service]
        self.added += size
        while len(ring) > room and ring:  # (once the service keeps its `keep`: one goes)
            old = ring.popleft()
            old_id = old.id
            if kept.get(old_id) is old and type(old) is not Exchange:
                del kept[old_id]  # (as `_drop`, inline)
                size -= old.size
                dropped = old.count - 1  # type: ignore[union-attr]
                if dropped:  # a batch: its later records go with it
                    del self._batches[old_id]
                    extra[service] -= dropped
                    room += dropped
            else:
                self.bytes += size
                size = 0
                self._drop(old)
                room = self._keep.get(service, DEFAULT_KEEP) - extra.get(service, 0)
        self.bytes += size
        if self.bytes > self.budget:
            while self.bytes > self.budget and self._evict_oldest():
                pass

    def reserve_ahead(self, size: int) -> int:
        """`reserve` room for what an open record may come to hold (a preview's limit, as
        its first bytes come), while what open records have reserved stays within
        `AHEAD_SHARE` of the budget (many connections at once would otherwise push every
        completed record out for room they may never use); how much it reserved."""
        size = min(size, self.budget // AHEAD_SHARE - self.reserved)
        if size <= 0:
            return 0
        self.reserve(size)
        return size

    def reserve(self, size: int) -> None:
        """Count `size` bytes an open record holds (its preview, filled) against the budget
        now, dropping the earliest completed records to make room; its owner `release`s them
        just before the record itself is added."""
        self.reserved += size
        self.bytes += size
        self.added += size  # (what it pushes out is freed now: the engine's next trim)
        while self.bytes > self.budget and self._evict_oldest():
            pass

    def release(self, size: int) -> None:
        """Bytes `reserve`d, no longer held apart from a record (it is added next, or gone)."""
        self.reserved -= size
        self.bytes -= size

    def _drop(self, exchange: Entry) -> None:
        kept = self._kept
        if kept.get(exchange.id) is exchange:  # (each record is its own entry)
            del kept[exchange.id]
            self.bytes -= exchange.size
            if isinstance(exchange, LazyBatch):
                del self._batches[exchange.id]
                self._extra[exchange.service] -= exchange.count - 1

    def _evict_oldest(self) -> bool:
        """Drop the exchange that completed first, whichever service it belongs to."""
        heads = [ring for ring in self._rings.values() if ring]
        if not heads:
            return False
        ring = min(heads, key=lambda r: self._completion(r[0]))
        self._drop(ring.popleft())
        return True

    def _completion(self, exchange: Entry) -> int:
        kept = self._kept.get(exchange.id)
        return kept.completed if kept is not None else -1

    def get(self, exchange_id: int) -> Exchange | None:
        kept = self._kept.get(exchange_id)
        if kept is None:  # one of a batch's later records?
            kept = next((b for b in self._batches.values()
                         if b.id < exchange_id < b.id + b.count), None)
        return real_at(exchange_id, kept) if kept is not None else None

    def _entries(self) -> Iterable[tuple[int, Entry]]:
        """Each kept record's id and its entry (a batch's under each of its ids)."""
        return chain(self._kept.items(), *(
            zip(range(b.id + 1, b.id + b.count), repeat(b)) for b in self._batches.values()))

    def all(self) -> list[Exchange]:
        """Every kept exchange, in id order (the order they started)."""
        return [real_at(i, kept) for i, kept in sorted(self._entries(), key=_KEY)]

    def recent(self, limit: int) -> list[Exchange]:
        """The `limit` kept exchanges with the highest ids, in id order."""
        if limit <= 0:
            return []
        latest = heapq.nlargest(limit, self._entries(), key=_KEY)
        return [real_at(i, kept) for i, kept in sorted(latest, key=_KEY)]

    def clear(self) -> None:
        for ring in self._rings.values():
            ring.clear()
        self._kept.clear()
        self._batches.clear()
        self._extra.clear()
        self.bytes = self.reserved  # (the open records' previews are still held)

    def __len__(self) -> int:
        return len(self._kept) + sum(self._extra.values())
