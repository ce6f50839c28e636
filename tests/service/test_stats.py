"""ServiceCounters: each duration lands in the histogram bucket Prometheus' `le` bounds give it
(the first bucket is taken without a bisect; the others by bisect, as before)."""

from __future__ import annotations

import bisect
import math

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
