"""Lazy records in the store: kept compact, built into their Exchange once, when first read,
and kept, counted and evicted like any exchange."""

from __future__ import annotations

from devamb.inspect.exchange import EXCHANGE_OVERHEAD, RECORD_OVERHEAD, BodyPreview, Exchange
from devamb.inspect.lazy import LazyBatch, LazyExchange, Origin
from devamb.inspect.store import ExchangeStore

ORIGIN = Origin("cache", "local", "redis", "127.0.0.1", 1)
BUILT: list[int] = []


class _Command(LazyExchange):
    __slots__ = ("name",)

    def __init__(self, exchange_id: int, name: str) -> None:
        super().__init__(exchange_id, ORIGIN)
        self.name = name

    @property
    def duration_ms(self) -> float:
        return 1.0

    @property
    def failed(self) -> bool:
        return False

    def build(self) -> Exchange:
        BUILT.append(self.id)
        exchange = self.origin.exchange(self.id, 0.0, 0.0)
        exchange.method = self.name
        return exchange


def _eager(i: int, service: str = "cache", size: int = 0) -> Exchange:
    ex = Exchange(i, service, "t", "http", "127.0.0.1", response_body=BodyPreview(size))
    ex.response_body.add(b"x" * size)
    return ex


def test_a_lazy_record_is_built_once_when_read() -> None:
    BUILT.clear()
    store = ExchangeStore()
    store.add_lazy([_Command(1, "GET"), _Command(3, "SET")])
    store.add(_eager(2))
    assert BUILT == [] and len(store) == 3  # nothing built while storing
    first = store.get(1)
    assert isinstance(first, Exchange) and first.method == "GET" and first.service == "cache"
    assert store.get(1) is first and BUILT == [1]  # built once
    assert [(e.id, type(e)) for e in store.all()] == [(i, Exchange) for i in (1, 2, 3)]
    assert [e.id for e in store.recent(1)] == [3] and BUILT == [1, 3]
    assert store.bytes == 2 * RECORD_OVERHEAD + _eager(2).approx_size()


def test_lazy_records_are_evicted_like_exchanges() -> None:
    store = ExchangeStore(budget=10 * RECORD_OVERHEAD)
    store.configure("cache", keep=4)
    store.add_lazy([_Command(i, "GET") for i in range(1, 7)])
    assert [e.id for e in store.all()] == [3, 4, 5, 6]  # the ring keeps the last 4
    store.add_lazy([_Command(4, "again")])  # the same id twice: the first stays
    assert store.get(4).method == "GET"  # type: ignore[union-attr]
    # as much as 8 lazy records: over budget, the oldest go first
    store.add(_eager(7, "other", size=8 * RECORD_OVERHEAD - EXCHANGE_OVERHEAD))
    assert store.bytes <= store.budget
    assert [e.id for e in store.all()][-1] == 7 and store.get(3) is None
    store.clear()
    assert store.all() == [] and store.bytes == 0


class _Batch(LazyBatch):
    __slots__ = ()

    @property
    def duration_ms(self) -> float:
        return 1.0

    @property
    def failed(self) -> bool:
        return False

    def build_records(self) -> list[LazyExchange]:
        return [_Command(self.id + i, f"CMD{i}") for i in range(self.count)]


def test_a_batch_is_one_entry_standing_for_each_of_its_records() -> None:
    """Commands answered together are kept as one entry under each of their ids: read one by
    one, counted, sized and evicted as that many records (a batch goes whole)."""
    store = ExchangeStore()
    store.configure("cache", keep=6)
    store.add_lazy([_Command(1, "GET"), _Batch(2, ORIGIN, 3)])
    assert len(store) == 4 and store.bytes == 4 * RECORD_OVERHEAD
    assert [(e.id, e.method) for e in store.all()] == [
        (1, "GET"), (2, "CMD0"), (3, "CMD1"), (4, "CMD2")]
    assert store.get(3).method == "CMD1"  # type: ignore[union-attr]
    assert [e.id for e in store.recent(2)] == [3, 4]
    store.add_lazy([_Batch(5, ORIGIN, 3)])  # 7 records: the oldest entry goes
    assert [e.id for e in store.all()] == [2, 3, 4, 5, 6, 7]
    store.add_lazy([_Command(8, "GET")])  # 7 again: the first batch goes whole
    assert [e.id for e in store.all()] == [5, 6, 7, 8] and store.get(2) is None
    assert store.bytes == 4 * RECORD_OVERHEAD
    store.add(_eager(9, "other", size=10 ** 8))  # over budget: everything older goes
    assert store.get(6) is None and len(store) <= 1


def test_one_entry_at_a_time_as_many_together() -> None:
    """`add_one` (a lone record or a batch) keeps, counts and evicts as `add_lazy` does."""
    store = ExchangeStore()
    store.configure("cache", keep=6)
    store.add_one(_Command(1, "GET"))
    store.add_one(_Batch(2, ORIGIN, 3))
    assert len(store) == 4 and store.bytes == 4 * RECORD_OVERHEAD
    assert store.get(3).method == "CMD1"  # type: ignore[union-attr]
    store.add_one(_Batch(5, ORIGIN, 3))  # 7 records: the oldest entry goes
    assert [e.id for e in store.all()] == [2, 3, 4, 5, 6, 7]
    store.add_one(_Command(8, "GET"))  # 7 again: the first batch goes whole
    assert [e.id for e in store.all()] == [5, 6, 7, 8] and store.get(3) is None
    assert len(store) == 4 and store.bytes == 4 * RECORD_OVERHEAD


def _state(store: ExchangeStore) -> tuple[object, ...]:
    return (sorted(store._kept), sorted(store._batches), {s: [e.id for e in r] for s, r in
            store._rings.items()}, store.bytes, store.added, len(store),
            [e.id for e in store.all()])


def test_a_lone_record_added_alone_is_kept_as_add_lazy_keeps_it() -> None:
    """`add_one` of a record of one leaves the store as `add_lazy` of that record does, step
    by step: past `keep`, the same record twice, an eager exchange at the ring's head, `keep`
    lowered, the budget reached, a service never configured, a batch kept."""
    def run(add_lone: bool) -> list[tuple[object, ...]]:
        store = ExchangeStore(budget=12 * RECORD_OVERHEAD + EXCHANGE_OVERHEAD + 100)
        store.configure("cache", keep=5)
        states = []

        def add(record: LazyExchange) -> None:
            if add_lone:
                store.add_one(record)
            else:
                store.add_lazy([record])
            states.append(_state(store))

        for i in range(1, 9):  # past `keep`: the earliest goes, one for one
            add(_Command(i, "GET"))
        add(_Command(8, "GET"))  # the same record again
        store.add(_eager(100, "cache"))  # an eager exchange in the ring
        states.append(_state(store))
        for i in range(9, 15):  # it reaches the ring's head and goes
            add(_Command(i, "GET"))
        store.configure("cache", keep=2)  # lowered: several go at once
        add(_Command(30, "GET"))
        store.configure("cache", keep=40)
        store.add(_eager(200, "web", size=8 * RECORD_OVERHEAD))  # the budget nearly reached
        states.append(_state(store))
        for i in range(31, 40):  # the budget pushes the earliest out (the web exchange first)
            add(_Command(i, "GET"))
        other = Origin("new", "local", "redis", "127.0.0.1", 2)
        lone = _Command(50, "GET")
        lone.origin = other  # a service never configured
        add(lone)
        add(_Batch(60, ORIGIN, 3))  # a batch kept: the general way from here
        for i in range(63, 67):
            add(_Command(i, "GET"))
        return states

    assert run(True) == run(False)
