"""ServiceCounters: each duration lands in the histogram bucket Prometheus' `le` bounds give it
(the first bucket is taken without a bisect; the others by bisect, as before)."""

from __future__ import annotations

import bisect
import math
from types import SimpleNamespace

from devamb.control.bus import EventBus
from devamb.inspect.lazy import LazyBatch, LazyExchange, Origin
from devamb.inspect.store import ExchangeStore
from devamb.service.recorder import Held, Recorder
from devamb.service.stats import ServiceCounters

DURATIONS = [-1.0, 0.0, 0.2, 0.999, 1.0, 1.0000001, 2.5, 3.0, 10.0, 9999.0, 10000.0, 10000.5,
             1e9, math.inf, math.nan]


def _expected(duration: float) -> int:
    return bisect.bisect_left([float(b) for b in ServiceCounters.BUCKETS], duration)


def test_each_way_of_counting_puts_a_duration_in_its_bucket() -> None:
    for duration in DURATIONS:
        want = _expected(duration)
        for count in (
            lambda c, d=duration: c.finished(d, False, 0, 0),
            lambda c, d=duration: c.finished_many(d, False, 3, "t"),
            lambda c, d=duration: c.finished_one(d, False, "t"),
            lambda c, d=duration: c.finished_runs([(d, False, 1, "t")]),
        ):
            counters = ServiceCounters()
            counters.active = 1
            count(counters)
            assert [i for i, n in enumerate(counters.buckets) if n] == [want], duration


def test_finished_one_counts_as_finished_many_of_one() -> None:
    one, many = ServiceCounters(clock=lambda: 5.0), ServiceCounters(clock=lambda: 5.0)
    for duration, failed in ((0.3, False), (1.7, True), (400.0, False)):
        one.finished_one(duration, failed, "a")
        many.finished_many(duration, failed, 1, "a")
    assert one.buckets == many.buckets and one.per_target == many.per_target == {"a": 3}
    assert (one.requests, one.errors, one.duration_sum) == (3, 1, 0.3 + 1.7 + 400.0)
    assert one.snapshot() == many.snapshot()


def test_the_recorders_lone_record_is_counted_as_finished_one() -> None:
    """`Recorder.one_recorder` counts a lone record as `finished_one` does (every bucket,
    failures, per target, the sample) and keeps it; a batch's records as `finished_many`."""
    store = ExchangeStore()
    counted = ServiceCounters(clock=lambda: 7.0)
    want = ServiceCounters(clock=lambda: 7.0)
    service = SimpleNamespace(counters=counted, name="db")
    record_one = Recorder(store, EventBus()).one_recorder(service)  # type: ignore[arg-type]
    ids = iter(range(1, 1000))
    for target in ("a", "b"):
        origin = Origin("db", target, "postgres", "c", 0)
        for duration in DURATIONS:
            for failed in (False, True):
                record = LazyExchange(next(ids), origin)
                record_one(record, duration, failed)
                want.finished_one(duration, failed, target)
                assert record.id in store._kept
        batch = LazyBatch(next(ids), origin, 3)
        for _ in range(2):
            next(ids)
        record_one(batch, 2.0, True)
        want.finished_many(2.0, True, 3, target)
    assert counted.buckets == want.buckets and counted.per_target == want.per_target
    assert (counted.requests, counted.errors) == (want.requests, want.errors)
    assert str(counted.duration_sum) == str(want.duration_sum)  # (nan among them)
    assert list(map(str, counted._samples)) == list(map(str, want._samples))
    assert len(store) == len(DURATIONS) * 2 * 2 + 3 * 2


def test_a_turns_runs_are_counted_as_each_one_by_one() -> None:
    """`finished_runs` (a loop turn's records, `Recorder.record_held`) counts as
    `finished_one`/`finished_many` would one by one: buckets, per target (the first target's
    and the others'), failures, the sum in the same order, a sample each at the turn's time."""
    runs = [(duration, failed, count, target) for target in ("a", "b", "a")
            for duration in DURATIONS for failed in (False, True) for count in (1, 3)]
    counted = ServiceCounters(clock=lambda: 9.0)
    want = ServiceCounters(clock=lambda: 9.0)
    counted.finished_runs(runs)
    counted.finished_runs([])
    for duration, failed, count, target in runs:
        if count == 1:
            want.finished_one(duration, failed, target)
        else:
            want.finished_many(duration, failed, count, target)
    assert counted.buckets == want.buckets and counted.per_target == want.per_target
    assert (counted.requests, counted.errors) == (want.requests, want.errors)
    assert str(counted.duration_sum) == str(want.duration_sum)  # (nan among them)
    assert list(map(str, counted._samples)) == list(map(str, want._samples))


def test_records_held_through_a_turn_are_recorded_as_at_once() -> None:
    """While `held` is open the recorder's `record_one` keeps its records back; `record_held`
    then counts and stores them as `record_one` would have one by one (lone records, a batch,
    two targets), and empties `held`."""
    at_once, later = ExchangeStore(), ExchangeStore()
    want, counted = ServiceCounters(clock=lambda: 7.0), ServiceCounters(clock=lambda: 7.0)
    recorder = Recorder(later, EventBus())
    held = Held()
    record_held = recorder.one_recorder(
        SimpleNamespace(counters=counted, name="db"), held)  # type: ignore[arg-type]
    record_one = Recorder(at_once, EventBus()).one_recorder(
        SimpleNamespace(counters=want, name="db"))  # type: ignore[arg-type]
    ids = iter(range(1, 1000))
    held.open = True
    for target in ("a", "b"):
        origin = Origin("db", target, "postgres", "c", 0)
        for duration in (0.2, 3.0):
            for failed in (False, True):
                record_id = next(ids)
                record_held(LazyExchange(record_id, origin), duration, failed)
                record_one(LazyExchange(record_id, origin), duration, failed)
        batch_id = next(ids)
        for _ in range(2):
            next(ids)
        record_held(LazyBatch(batch_id, origin, 3), 2.0, True)
        record_one(LazyBatch(batch_id, origin, 3), 2.0, True)
    assert len(later) == 0 and counted.requests == 0  # (held back)
    held.open = False
    recorder.record_held(SimpleNamespace(counters=counted, name="db"), held)  # type: ignore[arg-type]
    assert not held.records and not held.runs
    assert sorted(later._kept) == sorted(at_once._kept) and len(later) == len(at_once)
    assert later.bytes == at_once.bytes
    assert counted.buckets == want.buckets and counted.per_target == want.per_target
    assert (counted.requests, counted.errors, counted.duration_sum) == (
        want.requests, want.errors, want.duration_sum)
    assert list(counted._samples) == list(want._samples)
