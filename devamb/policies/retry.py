"""Retries: which failures to retry, jittered exponential backoff, and a retry budget.

On http2 and grpc services `on` also takes gRPC status names (UNAVAILABLE, ...): a call whose
answer carries one (a trailers-only response: nothing reached the client yet) is tried again.
A gRPC call is a POST: it is retried only when its :path matches one of `methods` (globs of the
methods known to be idempotent, /pkg.Service/Get*) or with `unsafe: true`.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from dataclasses import dataclass

from devamb.faults.base import H2_PROTOCOLS, FaultContext
from devamb.grpc.status import CODES, name_of
from devamb.profile.reader import Node

CONDITIONS = ("connect-failure", "reset", "timeout", "502", "503", "504", "5xx", "retriable-4xx")
KEYS = ("attempts", "on", "backoff", "max_backoff", "unsafe", "budget", "methods")
GRPC_CONDITIONS = tuple(name for name in CODES if name != "OK")
DEFAULT_ON = frozenset({"connect-failure", "reset", "502", "503", "504"})
DEFAULT_H2_ON = DEFAULT_ON | {"UNAVAILABLE"}  # http2 and grpc services
BUDGET_WINDOW = 10.0  # seconds over which the retry budget compares retries with requests
MIN_RETRIES = 3  # retries always allowed in a window, so a quiet service can still retry


@dataclass(frozen=True)
class RetrySpec:
    attempts: int = 3  # tries in all, the first included
    on: frozenset[str] = DEFAULT_ON
    backoff: float = 0.1
    max_backoff: float = 2.0
    unsafe: bool = False  # retry non-idempotent methods too
    budget: float = 0.2  # retries may add at most this share of extra load
    methods: tuple[str, ...] = ()  # HTTP/2: :path globs of calls safe to retry (gRPC methods)

    def retries_grpc(self, code: int) -> bool:
        """Whether a gRPC status (its number) leads to another try."""
        return name_of(code) in self.on

    def idempotent_path(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, glob) for glob in self.methods)

    def retries_status(self, status: int) -> bool:
        return (
            str(status) in self.on
            or (status >= 500 and "5xx" in self.on)
            or (status == 409 and "retriable-4xx" in self.on)
        )

    def retries_failure(self, code: str) -> bool:
        """`code` is an UpstreamFailed code: connect-failed, upstream-closed, timeout, ..."""
        condition = {"connect-failed": "connect-failure", "upstream-closed": "reset",
                     "bad-response": "reset", "timeout": "timeout"}.get(code)
        if condition == "timeout":
            return "timeout" in self.on or "504" in self.on or "5xx" in self.on
        return condition is not None and condition in self.on

    def statuses(self) -> frozenset[int]:
        """The upstream statuses that lead to another try."""
        return frozenset(s for s in range(400, 600) if self.retries_status(s))


def parse_retries(node: Node, protocol: str = "http") -> RetrySpec | None:
    if not node.mapping(KEYS):
        return None
    default = RetrySpec()
    h2 = protocol in H2_PROTOCOLS
    attempts = node.child("attempts").integer(low=1, high=10) if node.has("attempts") else 3
    on: frozenset[str] | None = DEFAULT_H2_ON if h2 else default.on
    if node.has("on"):
        values = node.child("on").value
        items = values if isinstance(values, list) else [values]
        names = [str(v) for v in items]
        known = CONDITIONS + GRPC_CONDITIONS if h2 else CONDITIONS
        unknown = [n for n in names if n not in known]
        if unknown:  # the other keys are checked all the same
            hint = "" if h2 else (" (gRPC status names are for http2 and grpc services)"
                                  if unknown[0] in GRPC_CONDITIONS else "")
            node.child("on").problem(
                f"{unknown[0]!r} is not a retry condition; use {', '.join(known)}{hint}"
            )
        on = None if unknown else frozenset(names)
    methods: tuple[str, ...] | None = ()
    if node.has("methods"):
        raw = node.child("methods").value
        listed = raw if isinstance(raw, list) else [raw]
        if not h2:
            node.child("methods").problem("'methods' is for http2 and grpc services (:path "
                                          "globs of the gRPC methods safe to retry)", key=True)
            methods = None
        elif not all(isinstance(v, str) and v.startswith("/") for v in listed):
            node.child("methods").problem("expected :path globs such as /pkg.Service/Get*")
            methods = None
        else:
            methods = tuple(listed)
    backoff = node.child("backoff").duration() if node.has("backoff") else default.backoff
    top = node.child("max_backoff").duration() if node.has("max_backoff") else default.max_backoff
    unsafe = node.child("unsafe").boolean() if node.has("unsafe") else False
    budget = node.child("budget").number(low=0.0, high=10.0) if node.has("budget") else 0.2
    if (attempts is None or on is None or backoff is None or top is None or unsafe is None
            or budget is None or methods is None):
        return None
    return RetrySpec(attempts, on, backoff, top, unsafe, budget, methods)


class RetryBudget:
    """Retries may add at most `ratio` extra load over a sliding window (plus a small floor)."""

    def __init__(self, ratio: float, ctx: FaultContext) -> None:
        self.ratio = ratio
        self.ctx = ctx
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self.denied = 0

    def _trim(self, now: float) -> None:
        for times in (self._requests, self._retries):
            while times and now - times[0] > BUDGET_WINDOW:
                times.popleft()

    def request(self) -> None:
        self._requests.append(self.ctx.clock())

    def has_room(self) -> bool:
        """Whether one more retry fits now (asked before a try, so its answer is kept if not)."""
        self._trim(self.ctx.clock())
        if len(self._retries) >= max(MIN_RETRIES, self.ratio * len(self._requests)):
            self.denied += 1
            return False
        return True

    def spend(self) -> None:
        self._retries.append(self.ctx.clock())


def backoff_delay(spec: RetrySpec, retry: int, ctx: FaultContext) -> float:
    """Full jitter: uniform between 0 and base·2^(retry-1), capped at max_backoff."""
    ceiling = min(spec.max_backoff, spec.backoff * (2 ** (retry - 1)))
    return ctx.rng.uniform(0, ceiling)
