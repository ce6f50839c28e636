"""Short per-service histories of request rate and latency, for sparklines."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from devamb.control.protocol import ServiceStats

DEFAULT_POINTS = 60  # thirty seconds of "stats" events at two a second


class Trends:
    """The last `points` samples of rate and p99 latency for each service."""

    def __init__(self, points: int = DEFAULT_POINTS) -> None:
        self.points = points
        self._rate: dict[str, deque[float]] = {}
        self._latency: dict[str, deque[float]] = {}

    def record(self, stats: Mapping[str, ServiceStats]) -> None:
        for name, sample in stats.items():
            self._series(self._rate, name).append(float(sample["rate"]))
            latency = sample["p99_ms"] if sample["p99_ms"] is not None else sample["p50_ms"]
            self._series(self._latency, name).append(float(latency or 0.0))

    def rate(self, service: str) -> list[float]:
        return list(self._rate.get(service, ()))

    def latency(self, service: str) -> list[float]:
        return list(self._latency.get(service, ()))

    def window(self, series: list[float]) -> list[float]:
        """`series` padded with zeros in front to a full window, so graphs fill from the right."""
        return [0.0] * (self.points - len(series)) + series

    def _series(self, table: dict[str, deque[float]], name: str) -> deque[float]:
        series = table.get(name)
        if series is None:
            series = table[name] = deque(maxlen=self.points)
        return series
