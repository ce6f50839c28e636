"""A record kept compact on the hot path and built into an `Exchange` when first read.

A protocol follower (devamb/wire) completes one record per command: at tens of thousands of
commands a second, building each `Exchange` (its previews, notes, the command shown on one
line) cost more than relaying the bytes. A `LazyExchange` keeps what the follower saw (the
parsed message, times, the connection's state) and builds the `Exchange` when someone reads
it (the store's `get`/`all`/`recent`, an event to a subscriber), once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devamb.inspect.exchange import DEFAULT_PREVIEW, RECORD_OVERHEAD, BodyPreview, Exchange


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection's records come from: one per connection, shared by its records."""

    service: str
    target: str
    protocol: str
    client: str
    connection: int  # the connection's own record's id
    bodies: int = DEFAULT_PREVIEW  # bytes of a body preview (the service's inspect.bodies)

    def exchange(self, exchange_id: int, wall: float, started: float) -> Exchange:
        return Exchange(exchange_id, self.service, self.target, self.protocol, self.client,
                        time=wall, started=started, request_body=BodyPreview(self.bodies),
                        response_body=BodyPreview(self.bodies))


class LazyExchange:
    """A completed record whose `Exchange` is built on first read (subclasses: `build`).
    The store keeps it as its own entry (`exchange`, `size`, `completed`: see `add_lazy`)."""

    # (`count`: a slot, not a class default: CPython 3.11 reads a class attribute through an
    # instance the slow way, and the recorder and the store read it per record)
    __slots__ = ("built", "completed", "count", "id", "origin", "size")
    size: int  # (set by the store)
    completed: int

    def __init__(self, exchange_id: int, origin: Origin) -> None:
        self.id = exchange_id
        self.origin = origin
        self.built: Exchange | None = None
        self.count = 1  # records it stands for (a `LazyBatch`: more)

    @property
    def service(self) -> str:
        return self.origin.service

    @property
    def target(self) -> str:
        return self.origin.target

    @property
    def duration_ms(self) -> float:
        raise NotImplementedError

    @property
    def failed(self) -> bool:
        raise NotImplementedError

    def build(self) -> Exchange:
        raise NotImplementedError

    def materialise(self) -> Exchange:
        built = self.built
        if built is None:
            built = self.built = self.build()
        return built

    @property
    def exchange(self) -> LazyExchange:
        return self  # (as the store's entry)

    def approx_size(self) -> int:
        return RECORD_OVERHEAD


class LazyBatch(LazyExchange):
    """Records completed together, kept as one entry: `count` records with the ids `id` to
    `id + count - 1` (a pipeline's commands answered in one chunk). The store keeps it under
    its first id (one dict entry, not `count`: the others are looked up among its batches
    when read) and sizes it as `count` records of its kind; `records` are built on first
    read (subclasses: `build_records`)."""

    __slots__ = ("_records",)

    def __init__(self, first_id: int, origin: Origin, count: int) -> None:
        super().__init__(first_id, origin)
        self.count = count
        self._records: Sequence[LazyExchange] | None = None

    def records(self) -> Sequence[LazyExchange]:
        records = self._records
        if records is None:
            records = self._records = self.build_records()
        return records

    def build_records(self) -> Sequence[LazyExchange]:
        raise NotImplementedError

    def at(self, exchange_id: int) -> Exchange:
        return self.records()[exchange_id - self.id].materialise()

    def build(self) -> Exchange:
        return self.at(self.id)


def singles(entries: Sequence[LazyExchange]) -> list[LazyExchange]:
    """Each record of `entries`, batches opened."""
    return [one for entry in entries
            for one in (entry.records() if isinstance(entry, LazyBatch) else (entry,))]


def real_at(exchange_id: int, entry: Exchange | LazyExchange) -> Exchange:
    """The exchange a stored entry stands for under `exchange_id` (a batch: one of its)."""
    if type(entry) is Exchange:
        return entry
    if isinstance(entry, LazyBatch):
        return entry.at(exchange_id)
    return entry.materialise()  # type: ignore[union-attr]


def real(entry: Exchange | LazyExchange) -> Exchange:
    """The exchange a stored entry stands for."""
    return entry if type(entry) is Exchange else entry.materialise()  # type: ignore[union-attr]
