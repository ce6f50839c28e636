"""A service's retries, timeouts and circuit breaker: route `retry_policy` and `timeout`,
cluster `circuit_breakers` (the failure-counting breaker is Envoy's outlier detection)."""

from __future__ import annotations

from devamb.export.context import Config, Context, duration
from devamb.service.spec import ServiceSpec

SAFE_METHODS = "GET|HEAD|OPTIONS|PUT|DELETE|TRACE"  # devamb retries these unless `unsafe: true`
GRPC_ON = {"CANCELLED": "cancelled", "DEADLINE_EXCEEDED": "deadline-exceeded",
           "INTERNAL": "internal", "RESOURCE_EXHAUSTED": "resource-exhausted",
           "UNAVAILABLE": "unavailable"}
MIN_RETRY_CONCURRENCY = 3  # devamb's floor of retries a quiet service may always make


def route_timeouts(ctx: Context, spec: ServiceSpec) -> Config:
    path = ("services", spec.name)
    if ctx.raw((*path, "timeout")) is not None:
        ctx.note((*path, "timeout"), "Envoy's route timeout runs until the whole response is "
                                     "read (devamb: until the response headers, then per "
                                     "stalled read)")
    return {"timeout": duration(spec.timeout)}


def retry_policy(ctx: Context, spec: ServiceSpec) -> Config | None:
    retries = spec.retries
    if retries is None:
        return None
    path = ("services", spec.name, "retries")
    on: list[str] = []
    statuses = sorted(int(c) for c in retries.on if c.isdigit())
    for condition in sorted(retries.on):
        if condition in ("connect-failure", "reset", "5xx", "retriable-4xx"):
            on.append(condition)
        elif condition == "timeout":
            on.append("reset")  # a try cut by per_try_timeout is retried as a reset
        elif condition in GRPC_ON:
            on.append(GRPC_ON[condition])
        elif not condition.isdigit():
            ctx.note((*path, "on"), f"{condition!r} has no Envoy retry condition; dropped")
    if statuses:
        on.append("retriable-status-codes")
    if "timeout" in retries.on:
        ctx.note((*path, "on"), "'timeout' is exported as Envoy's 'reset' (a try cut by "
                                "per_try_timeout is retried)")
    policy: Config = {
        "retry_on": ",".join(dict.fromkeys(on)),
        "num_retries": retries.attempts - 1,
        "retry_back_off": {"base_interval": duration(retries.backoff),
                           "max_interval": duration(retries.max_backoff)},
    }
    if statuses:
        policy["retriable_status_codes"] = statuses
    if spec.per_try_timeout is not None:
        policy["per_try_timeout"] = duration(spec.per_try_timeout)
    if not retries.unsafe:
        if retries.methods:
            ctx.note((*path, "methods"), "Envoy cannot pick retried calls by :path; gRPC "
                                         "calls (POST) are not retried")
        policy["retriable_request_headers"] = [
            {"name": ":method", "string_match": {"safe_regex": {"regex": SAFE_METHODS}}}
        ]
    return policy


def circuit_breakers(ctx: Context, spec: ServiceSpec) -> Config | None:
    """Thresholds for each of the service's clusters: concurrency and the retry budget."""
    thresholds: Config = {"priority": "DEFAULT"}
    breaker = spec.circuit_breaker
    if breaker is not None and breaker.max_requests is not None:
        thresholds["max_requests"] = breaker.max_requests
        thresholds["max_pending_requests"] = max(breaker.max_pending, 1)
        if breaker.max_pending == 0:
            ctx.note(("services", spec.name, "circuit_breaker", "max_pending"),
                     "Envoy queues at least 1 pending request (devamb: 0, refuse at once)")
    if spec.retries is not None:
        thresholds["retry_budget"] = {
            "budget_percent": {"value": round(spec.retries.budget * 100, 3)},
            "min_retry_concurrency": MIN_RETRY_CONCURRENCY,
        }
        ctx.note(("services", spec.name, "retries", "budget"),
                 "Envoy's retry budget limits retries in flight against requests in flight "
                 "(devamb: retries against requests over 10 s)")
    if len(thresholds) == 1:
        return None
    return {"thresholds": [thresholds]}


def breaker_outlier(ctx: Context, spec: ServiceSpec) -> Config | None:
    """The failure-counting breaker as outlier detection on the service's clusters."""
    breaker = spec.circuit_breaker
    if breaker is None:
        return None
    ctx.note(("services", spec.name, "circuit_breaker", "failures"),
             "exported as outlier detection: failures in a row (not within window) eject an "
             "endpoint for open_for; no half-open trial requests")
    return {
        "consecutive_gateway_failure": breaker.failures,
        "enforcing_consecutive_gateway_failure": 100,
        "enforcing_consecutive_5xx": 0,
        "base_ejection_time": duration(breaker.open_for),
        "max_ejection_percent": 100,
        "interval": "1s",
    }
