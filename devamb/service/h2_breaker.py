"""The circuit breaker of a service's target (policies/breaker.py) around each HTTP/2 call to
it: an open circuit or a full one answers the call at once (UNAVAILABLE, or 503), and each call
that went through is a success or a failure for the breaker's count.

A call fails when it ends with an error (a reset, a lost connection), an HTTP status of 500 or
more, or a gRPC status that says the server failed: UNKNOWN, DEADLINE_EXCEEDED, INTERNAL,
UNAVAILABLE or DATA_LOSS (the statuses a client's own mistake does not cause).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from devamb.grpc.status import CODES
from devamb.inspect.exchange import Exchange
from devamb.policies.breaker import Overloaded
from devamb.service.core import Service
from devamb.service.h2_faults import H2Call

SERVER_FAILURES = frozenset(CODES[n] for n in (
    "UNKNOWN", "DEADLINE_EXCEEDED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"))


def grpc_status(exchange: Exchange) -> int | None:
    """The call's grpc-status: in its trailers, or in a trailers-only answer's headers."""
    trailers = exchange.notes.get("http2", {}).get("trailers") or []
    for name, value in [*trailers, *(exchange.response_headers or [])]:
        if name == "grpc-status" and value.isdigit():
            return int(value)
    return None


def succeeded(exchange: Exchange) -> bool:
    if exchange.error is not None or (exchange.status or 0) >= 500:
        return False
    return grpc_status(exchange) not in SERVER_FAILURES


async def guarded(service: Service, target: str, call: H2Call,
                  relay: Callable[[], Awaitable[None]]) -> None:
    """Run `relay` (the call to `target`) under the target's breaker, if it has one."""
    breaker = service.policy.breakers.get(target)
    if breaker is None:
        await relay()
        return
    if not breaker.allow():
        await _refuse(call, f"the circuit breaker of target {target!r} is open")
        return
    try:
        await breaker.acquire()
    except Overloaded as exc:
        await _refuse(call, str(exc))
        return
    try:
        await relay()
    except BaseException:  # cancelled or broken: says nothing of the target
        breaker.abandon()
        raise
    else:
        breaker.record(succeeded(call.exchange))
    finally:
        await breaker.release()


async def _refuse(call: H2Call, why: str) -> None:
    if call.grpc:
        await call.answer_grpc(CODES["UNAVAILABLE"], why, {})
    else:
        await call.answer(503, {"content-type": "text/plain; charset=utf-8"},
                          f"devamb: {why}\n".encode())
    call.exchange.error = why
