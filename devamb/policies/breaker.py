"""A circuit breaker per target: closed, open, half-open — plus concurrency thresholds."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from devamb.faults.base import FaultContext
from devamb.profile.reader import Node

KEYS = ("failures", "window", "open_for", "half_open_requests", "max_requests", "max_pending")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class BreakerSpec:
    failures: int = 5  # failures within `window` that open the circuit
    window: float = 10.0
    open_for: float = 10.0
    half_open_requests: int = 1  # trial requests let through once `open_for` is over
    max_requests: int | None = None  # concurrent requests to the target
    max_pending: int = 0  # requests that may wait for a slot when max_requests is reached


def parse_breaker(node: Node) -> BreakerSpec | None:
    if not node.mapping(KEYS):
        return None
    d = BreakerSpec()
    failures = node.child("failures").integer(low=1) if node.has("failures") else d.failures
    window = node.child("window").duration() if node.has("window") else d.window
    open_for = node.child("open_for").duration() if node.has("open_for") else d.open_for
    trials = (node.child("half_open_requests").integer(low=1)
              if node.has("half_open_requests") else d.half_open_requests)
    max_requests = node.child("max_requests").integer(low=1) if node.has("max_requests") else None
    max_pending = node.child("max_pending").integer(low=0) if node.has("max_pending") else 0
    if (failures is None or window is None or open_for is None or trials is None
            or max_pending is None):
        return None
    return BreakerSpec(failures, window, open_for, trials, max_requests, max_pending)


class Overloaded(Exception):
    """More concurrent requests than the thresholds allow."""


class CircuitBreaker:
    def __init__(self, spec: BreakerSpec, ctx: FaultContext,
                 on_change: Callable[[str, str], None]) -> None:
        self.spec = spec
        self.ctx = ctx
        self.state = CLOSED
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._trials = 0
        self._on_change = on_change  # (new state, why)
        self.in_flight = 0
        self._waiting = 0
        self._slot = asyncio.Condition()
        self.rejected = 0

    def _set(self, state: str, why: str) -> None:
        if state != self.state:
            self.state = state
            self._on_change(state, why)

    def allow(self) -> bool:
        """May a request go to the target now?"""
        if self.state == OPEN:
            if self.ctx.clock() - self._opened_at < self.spec.open_for:
                self.rejected += 1
                return False
            self._set(HALF_OPEN, f"{self.spec.open_for:g}s passed; letting trial requests through")
            self._trials = 0
        if self.state == HALF_OPEN:
            if self._trials >= self.spec.half_open_requests:
                self.rejected += 1
                return False
            self._trials += 1
        return True

    def abandon(self) -> None:
        """A request let through ended with no verdict on the target (its client left or
        stalled): a half-open trial slot it held goes to the next request."""
        if self.state == HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def record(self, success: bool) -> None:
        now = self.ctx.clock()
        if self.state == HALF_OPEN:
            if success:
                self._failures.clear()
                self._set(CLOSED, "a trial request succeeded")
            else:
                self._open(now, "a trial request failed")
            return
        if success:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.spec.window:
            self._failures.popleft()
        if len(self._failures) >= self.spec.failures:
            self._open(now, f"{len(self._failures)} failures within {self.spec.window:g}s")

    def _open(self, now: float, why: str) -> None:
        self._opened_at = now
        self._failures.clear()
        self._set(OPEN, why)

    async def acquire(self) -> None:
        """A concurrency slot; raises Overloaded beyond max_requests + max_pending."""
        limit = self.spec.max_requests
        if limit is None:
            self.in_flight += 1
            return
        if self.in_flight >= limit:
            if self._waiting >= self.spec.max_pending:
                self.rejected += 1
                raise Overloaded(f"{self.in_flight} requests in flight (max_requests {limit}, "
                                 f"max_pending {self.spec.max_pending})")
            self._waiting += 1
            try:
                async with self._slot:
                    await self._slot.wait_for(lambda: self.in_flight < limit)
            finally:
                self._waiting -= 1
        self.in_flight += 1

    async def release(self) -> None:
        self.in_flight -= 1
        if self.spec.max_requests is not None and self._waiting:
            async with self._slot:
                self._slot.notify()

    def to_json(self) -> dict[str, object]:
        return {"state": self.state, "in_flight": self.in_flight, "rejected": self.rejected,
                "recent_failures": len(self._failures)}
