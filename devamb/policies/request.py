"""A service's request policy: circuit breaker and thresholds per target, retries, timeouts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from devamb.faults.base import FaultContext
from devamb.policies.breaker import BreakerSpec, CircuitBreaker, Overloaded
from devamb.policies.retry import RetryBudget, RetrySpec, backoff_delay
from devamb.proxy.deadline import ClientStalled, read_within
from devamb.proxy.errors import RetryableStatus, UpstreamFailed
from devamb.proxy.request import IDEMPOTENT, FrontRequest
from devamb.proxy.response import StreamResponse

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange


class Target(Protocol):
    """What a policy needs of a target: its name, and a way to hand it one try."""

    @property
    def name(self) -> str: ...  # read-only: targets.base.Target's is a property

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse: ...

class ServiceSettings(Protocol):
    """What a policy reads of its service's settings (a `devamb.service.spec.ServiceSpec`,
    which lives above this layer)."""

    @property
    def name(self) -> str: ...
    @property
    def targets(self) -> Mapping[str, object]: ...
    @property
    def timeout(self) -> float: ...
    @property
    def per_try_timeout(self) -> float | None: ...
    @property
    def connect_timeout(self) -> float | None: ...
    @property
    def retries(self) -> RetrySpec | None: ...
    @property
    def circuit_breaker(self) -> BreakerSpec | None: ...


BUFFER_FOR_RETRY = 64 * 1024  # request bodies up to this size are kept so a retry can resend


@dataclass(frozen=True)
class AttemptLimits:
    """What one try may take; set on the exchange for the target's forwarding to honour."""

    timeout: float  # until response headers, from when the request was sent
    connect_timeout: float | None
    retry_statuses: frozenset[int]  # upstream statuses to turn into another try
    # Endpoints earlier tries of this exchange used (shared by its tries): a pool sends a
    # retry elsewhere while it can, as Envoy's previous_hosts retry predicate does.
    tried: set[str] = field(default_factory=set)



class RequestPolicy:
    def __init__(self, spec: ServiceSettings, ctx: FaultContext,
                 notify: Callable[[str, str], None]) -> None:
        self.spec = spec
        self.ctx = ctx
        self.retry = spec.retries
        self.budget = RetryBudget(spec.retries.budget, ctx) if spec.retries else None
        self.breakers: dict[str, CircuitBreaker] = {}
        if spec.circuit_breaker is not None:
            for name in spec.targets:
                self.breakers[name] = CircuitBreaker(
                    spec.circuit_breaker, ctx, self._announce(name, notify)
                )
        # Without retries, breakers or extra timeouts the listener skips all of this.
        self.trivial = not (self.retry or self.breakers or spec.per_try_timeout
                            or spec.connect_timeout)

    def _announce(self, target: str, notify: Callable[[str, str], None]) -> Callable[[str, str],
                                                                                     None]:
        def changed(state: str, why: str) -> None:
            level = "warning" if state == "open" else "info"
            notify(level, f"circuit breaker of {self.spec.name}/{target} is {state}: {why}")
        return changed

    async def call(self, target: Target, request: FrontRequest,
                   exchange: Exchange) -> StreamResponse:
        breaker = self.breakers.get(target.name)
        if breaker is None:
            return await self._tries(target, request, exchange)
        if not breaker.allow():
            raise UpstreamFailed(503, "circuit-open",
                                 f"the circuit breaker of target {target.name!r} is open")
        try:
            await breaker.acquire()
        except Overloaded as exc:
            raise UpstreamFailed(503, "overloaded", str(exc)) from None
        try:
            response = await self._tries(target, request, exchange)
        except ClientStalled:
            breaker.abandon()  # the client's doing: says nothing about the target
            raise
        except UpstreamFailed:
            breaker.record(False)
            raise
        except BaseException:  # the client went away (or a fault cut it): no verdict either
            breaker.abandon()
            raise
        finally:
            await breaker.release()
        breaker.record(exchange.error is None and (exchange.status or 0) < 500)
        return response

    async def _tries(self, target: Target, request: FrontRequest,
                     exchange: Exchange) -> StreamResponse:
        retry, spec, clock = self.retry, self.spec, self.ctx.clock
        attempts = 1
        retriable = retry is not None and (retry.unsafe or request.method in IDEMPOTENT)
        if retry is not None and retriable and await self._keep_body(request, exchange,
                                                                     spec.timeout):
            attempts = retry.attempts
        if self.budget is not None:
            self.budget.request()
        deadline = clock() + spec.timeout  # from here: the body (if kept) is in hand
        tried: set[str] = set()
        for attempt in range(1, attempts + 1):
            exchange.attempts = attempt
            left = max(0.001, deadline - clock())
            may_retry = attempt < attempts and self.budget is not None and self.budget.has_room()
            exchange.limits = AttemptLimits(
                timeout=min(spec.per_try_timeout or left, left),
                connect_timeout=spec.connect_timeout,
                retry_statuses=retry.statuses() if may_retry and retry else frozenset(),
                tried=tried,
            )
            try:
                return await target.handle_http(request, exchange)
            except RetryableStatus as exc:
                why = f"upstream answered {exc.status}"
            except UpstreamFailed as exc:
                if not may_retry or retry is None or not retry.retries_failure(exc.code):
                    raise
                why = exc.reason
            assert retry is not None and self.budget is not None
            self.budget.spend()
            exchange.retried = [*exchange.retried, why]  # (a record's list: assigned)
            await self.ctx.sleep(backoff_delay(retry, attempt, self.ctx))
            if clock() >= deadline:
                raise UpstreamFailed(504, "timeout", f"no response within {spec.timeout:g}s "
                                     f"after {attempt} tries")
        raise AssertionError("unreachable: the last try returns or raises")

    @staticmethod
    async def _keep_body(request: FrontRequest, exchange: Exchange, idle: float) -> bool:
        """Read a small body whole so that a retry can send it again; False if it is too big.
        A client that pauses longer than `idle` while sending it gets a 408."""
        if not request.body_exists:
            return True
        length = request.content_length
        if length is None or length > BUFFER_FOR_RETRY:
            return False  # streamed bodies are sent once: no retry
        await request.send_continue()
        body = await read_within(request.iter_body(), idle)
        exchange.request_body.add(body)
        exchange.body_buffer = body
        return True

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {}
        if self.budget is not None:
            data["retry_budget_denied"] = self.budget.denied
        return data
