"""A record kept compact on the hot path and built into an `Exchange` when first read.

A protocol follower (devamb/wire) completes one record per command: at tens of thousands of
commands a second, building each `Exchange` (its previews, notes, the command shown on one
line) cost more than relaying the bytes. A `LazyExchange` keeps what the follower saw (the
parsed message, times, the connection's state) and builds the `Exchange` when someone reads
it (the store's `get`/`all`/`recent`, an event to a subscriber), once.
"""

from __future__ import annotations

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

    __slots__ = ("built", "completed", "id", "origin", "size")
    size: int  # (set by the store)
    completed: int

    def __init__(self, exchange_id: int, origin: Origin) -> None:
        self.id = exchange_id
        self.origin = origin
        self.built: Exchange | None = None

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


def real(entry: Exchange | LazyExchange) -> Exchange:
    """The exchange a stored entry stands for."""
    return entry if type(entry) is Exchange else entry.materialise()  # type: ignore[union-attr]
