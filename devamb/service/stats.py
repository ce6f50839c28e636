"""Per-service counters and latency percentiles over a sliding window."""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat

from devamb.control.protocol import ServiceStats

WINDOW = 10.0  # seconds the rate, error rate and percentiles look back over
SAMPLES = 4096  # latency samples kept for percentiles (the most recent ones)


class ServiceCounters:
    BUCKETS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)  # ms, Prometheus

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.requests = 0
        self.errors = 0
        self.active = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=SAMPLES)
        self.buckets = [0] * (len(self.BUCKETS) + 1)  # the last one: above every bound
        self.duration_sum = 0.0
        self.per_target: dict[str, int] = {}
        #: the copies a split's `mirror` sends back through the listener: counted here, apart,
        #: so that the service's own numbers are what its clients saw (None until the first)
        self.mirror: ServiceCounters | None = None

    def started(self) -> None:
        self.active += 1

    def mirror_began(self) -> None:
        """The exchange `started` just counted is a mirror's copy: move it to the mirror's."""
        self.active -= 1
        if self.mirror is None:
            self.mirror = ServiceCounters(self._clock)
        self.mirror.active += 1

    def finished(
        self,
        duration_ms: float,
        error: bool,
        bytes_in: int,
        bytes_out: int,
        target: str = "",
        mirror: bool = False,
    ) -> None:
        if mirror and self.mirror is not None:
            self.mirror.finished(duration_ms, error, bytes_in, bytes_out, target)
            return
        self.active -= 1
        self.buckets[0 if duration_ms <= _FIRST else _bisect_left(_BOUNDS, duration_ms)] += 1
        self.duration_sum += duration_ms
        per_target = self.per_target
        per_target[target] = per_target.get(target, 0) + 1
        self.requests += 1
        if error:
            self.errors += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self._samples.append((self._clock(), duration_ms, error))

    def finished_many(self, duration_ms: float, error: bool, count: int, target: str) -> None:
        """`count` exchanges that took as long and ended alike (wire commands answered in one
        chunk), none counted by `started`: `finished` once for them all."""
        self.buckets[0 if duration_ms <= _FIRST else _bisect_left(_BOUNDS, duration_ms)] += count
        self.duration_sum += duration_ms * count
        per_target = self.per_target
        per_target[target] = per_target.get(target, 0) + count
        self.requests += count
        if error:
            self.errors += count
        if count == 1:  # (a lone command's: no `repeat`)
            self._samples.append((self._clock(), duration_ms, error))
        else:
            self._samples.extend(repeat((self._clock(), duration_ms, error), count))

    def finished_one(self, duration_ms: float, error: bool, target: str) -> None:
        """`finished_many` for one exchange (a wire command's record, per completed chunk)."""
        self.buckets[0 if duration_ms <= _FIRST else _bisect_left(_BOUNDS, duration_ms)] += 1
        self.duration_sum += duration_ms
        per_target = self.per_target
        per_target[target] = per_target.get(target, 0) + 1
        self.requests += 1
        if error:
            self.errors += 1
        clock = self._clock  # (read, then called: an attribute called as a method is not
        self._samples.append((clock(), duration_ms, error))  # looked up the fast way)

    def finished_runs(self, runs: Sequence[tuple[float, bool, int, str]]) -> None:
        """`finished_many` for each (duration ms, failed, count, target): the records of one
        loop turn (`Recorder.record_held`), their samples at one time, in one pass."""
        if not runs:
            return
        buckets = self.buckets
        append = self._samples.append
        now = self._clock()
        duration_sum = self.duration_sum  # (added in the same order: the same sum)
        first = runs[0][3]  # (the target of most: the others counted apart)
        total = errors = elsewhere = 0
        for duration_ms, error, count, target in runs:
            buckets[0 if duration_ms <= _FIRST else _bisect_left(_BOUNDS, duration_ms)] += count
            if count == 1:
                duration_sum += duration_ms
                append((now, duration_ms, error))
            else:
                duration_sum += duration_ms * count
                self._samples.extend(repeat((now, duration_ms, error), count))
            total += count
            if error:
                errors += count
            if target != first:
                self.per_target[target] = self.per_target.get(target, 0) + count
                elsewhere += count
        per_target = self.per_target
        per_target[first] = per_target.get(first, 0) + total - elsewhere
        self.duration_sum = duration_sum
        self.requests += total
        self.errors += errors

    def snapshot(self) -> ServiceStats:
        now = self._clock()
        recent = [s for s in self._samples if now - s[0] <= WINDOW]
        durations = sorted(s[1] for s in recent)
        errors = sum(1 for s in recent if s[2])
        span = WINDOW
        if len(recent) == len(self._samples) == SAMPLES:
            span = max(now - recent[0][0], 1e-3)  # the window holds more than we keep
        stats: ServiceStats = {
            "requests": self.requests,
            "errors": self.errors,
            "active": self.active,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "rate": round(len(recent) / span, 2),
            "error_rate": round(errors / len(recent), 4) if recent else 0.0,
            "p50_ms": _percentile(durations, 0.50),
            "p90_ms": _percentile(durations, 0.90),
            "p99_ms": _percentile(durations, 0.99),
        }
        if self.mirror is not None:
            # ServiceStats does not declare `mirror` yet (control/protocol.py, not this module's)
            stats["mirror"] = self.mirror.snapshot()  # type: ignore[typeddict-unknown-key]
        return stats


_BUCKETS = ServiceCounters.BUCKETS
_BOUNDS = tuple(float(bound) for bound in _BUCKETS)  # (bisect compares floats with floats faster)
_bisect_left = bisect.bisect_left
# the first bucket's bound: a duration within it (most of a local database's commands) is
# counted there without bisect (~1,200 instructions: its compares of floats are generic ones)
_FIRST = _BOUNDS[0]


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return round(ordered[index], 3)
