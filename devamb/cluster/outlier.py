"""Passive outlier ejection: endpoints whose exchanges keep failing are left out for a while.

`outlier: {consecutive_failures: 5, eject_for: 30s, max_ejected: 50%}`, like Envoy's
consecutive-5xx detection and twemproxy's auto_eject_hosts. A failure is an exchange that got
no response (connect failure, timeout, closed or broken response) or a 502/503/504 answer; a
500 is an answer from a live process and does not count. At most `max_ejected` of the endpoints
are out at once (at least one, unless it is 0%). An ejected endpoint returns after `eject_for`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from devamb.cluster.endpoint import Endpoint, EndpointSet
from devamb.profile.reader import Node

KEYS = ("consecutive_failures", "eject_for", "max_ejected")
FAILURE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class OutlierSpec:
    consecutive_failures: int = 5
    eject_for: float = 30.0
    max_ejected: float = 0.5  # a fraction of the endpoints


def parse_outlier(node: Node) -> OutlierSpec | None:
    if not node.mapping(KEYS):
        return None
    default = OutlierSpec()
    failures: int | None = default.consecutive_failures
    if node.has("consecutive_failures"):
        failures = node.child("consecutive_failures").integer(low=1, high=1000)
    eject_for = node.child("eject_for").duration() if node.has("eject_for") else default.eject_for
    share: float | None = default.max_ejected
    if node.has("max_ejected"):
        share = _percent(node.child("max_ejected"))
    if failures is None or eject_for is None or share is None:
        return None
    return OutlierSpec(failures, eject_for, share)


def _percent(node: Node) -> float | None:
    value = node.value
    text = value.strip() if isinstance(value, str) else None
    if text is not None and text.endswith("%"):
        try:
            number = float(text[:-1])
        except ValueError:
            number = -1.0
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        node.problem(f"expected a percentage such as 50%, got {value!r}")
        return None
    if not 0 <= number <= 100:
        node.problem(f"{value!r} is not a percentage from 0% to 100%")
        return None
    return number / 100


class OutlierDetector:
    """Counts failures per endpoint, ejects and re-admits; `on_change(endpoint)` on either."""

    def __init__(
        self,
        spec: OutlierSpec,
        endpoints: EndpointSet,
        on_change: Callable[[Endpoint], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.endpoints = endpoints
        self.on_change = on_change
        self.clock = clock
        self._next_return = 0.0  # earliest ejected_until; 0 when nothing is ejected
        self._timers: set[asyncio.TimerHandle] = set()  # so a return is announced on time

    def cap(self) -> int:
        """How many endpoints may be ejected at once."""
        share = self.spec.max_ejected
        if share <= 0:
            return 0
        return max(1, math.floor(share * len(self.endpoints) + 1e-9))

    def success(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures = 0

    def failure(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures += 1
        if endpoint.ejected or endpoint.consecutive_failures < self.spec.consecutive_failures:
            return
        ejected = sum(1 for e in self.endpoints if e.ejected)
        if ejected >= self.cap():
            return
        endpoint.ejected_until = self.clock() + self.spec.eject_for
        endpoint.ejections += 1
        endpoint.consecutive_failures = 0
        if not self._next_return or endpoint.ejected_until < self._next_return:
            self._next_return = endpoint.ejected_until
        self.endpoints.changed()
        self.on_change(endpoint)
        self._wake_after(self.spec.eject_for)

    def _wake_after(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # used without a loop (unit tests): returns happen on demand
            return
        handle: asyncio.TimerHandle

        def wake() -> None:
            self._timers.discard(handle)
            self.expire()

        handle = loop.call_later(delay + 0.001, wake)
        self._timers.add(handle)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def outcome(self, endpoint: Endpoint, status: int) -> None:
        """Count an exchange that got an answer with `status`."""
        if status in FAILURE_STATUSES:
            self.failure(endpoint)
        else:
            endpoint.consecutive_failures = 0

    def expire(self) -> None:
        """Re-admit endpoints whose ejection time is over (cheap when none is due)."""
        if not self._next_return:
            return
        now = self.clock()
        if now < self._next_return:
            return
        self._next_return = 0.0
        for endpoint in self.endpoints:
            if not endpoint.ejected:
                continue
            if endpoint.ejected_until <= now:
                endpoint.ejected_until = 0.0
                self.endpoints.changed()
                self.on_change(endpoint)
            elif not self._next_return or endpoint.ejected_until < self._next_return:
                self._next_return = endpoint.ejected_until
