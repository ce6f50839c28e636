"""Prometheus text exposition of the engine's counters (served at /metrics by the control API)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devamb.service.core import Service


def _labels(**labels: Any) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), "/").replace(chr(34), "")}"'
                     for k, v in labels.items())
    return "{" + inner + "}"


def render(services: Iterable[Service]) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    services = list(services)
    counters = [
        ("devamb_requests_total", "HTTP exchanges or TCP connections handled", "requests"),
        ("devamb_errors_total", "exchanges that failed or answered 5xx", "errors"),
        ("devamb_bytes_in_total", "bytes from clients towards upstreams", "bytes_in"),
        ("devamb_bytes_out_total", "bytes from upstreams towards clients", "bytes_out"),
    ]
    for name, text, field in counters:
        family(name, "counter", text)
        for s in services:
            lines.append(f"{name}{_labels(service=s.name)} {getattr(s.counters, field)}")
    mirrored = [(s, s.counters.mirror) for s in services if s.counters.mirror is not None]
    if mirrored:  # a split's mirror copies: apart from the service's own exchanges
        family("devamb_mirror_requests_total", "counter", "mirror copies a split sent")
        for s, m in mirrored:
            lines.append(f"devamb_mirror_requests_total{_labels(service=s.name)} {m.requests}")
        family("devamb_mirror_errors_total", "counter", "mirror copies that failed or got 5xx")
        for s, m in mirrored:
            lines.append(f"devamb_mirror_errors_total{_labels(service=s.name)} {m.errors}")
    family("devamb_in_flight", "gauge", "exchanges in progress")
    for s in services:
        lines.append(f"devamb_in_flight{_labels(service=s.name)} {s.counters.active}")
    family("devamb_target_state", "gauge", "1 for a target's current state (see status)")
    for s in services:
        for target in s.targets.values():
            labels = _labels(service=s.name, target=target.name, state=target.state)
            lines.append(f"devamb_target_state{labels} 1")
    family("devamb_target_requests_total", "counter", "exchanges per target")
    for s in services:
        for name, count in sorted(s.counters.per_target.items()):
            lines.append(f"devamb_target_requests_total{_labels(service=s.name, target=name)}"
                         f" {count}")
    family("devamb_active_target", "gauge", "1 for the target a service routes to now")
    for s in services:
        for name in s.targets:
            value = int(name == s.active)
            lines.append(f"devamb_active_target{_labels(service=s.name, target=name)} {value}")
    family("devamb_request_duration_ms", "histogram", "exchange durations in milliseconds")
    for s in services:
        cumulative = 0
        for bound, count in zip(s.counters.BUCKETS, s.counters.buckets, strict=False):
            cumulative += count
            lines.append(f"devamb_request_duration_ms_bucket{_labels(service=s.name, le=bound)}"
                         f" {cumulative}")
        cumulative += s.counters.buckets[-1]
        lines.append(f'devamb_request_duration_ms_bucket{_labels(service=s.name, le="+Inf")}'
                     f" {cumulative}")
        lines.append(f"devamb_request_duration_ms_sum{_labels(service=s.name)} "
                     f"{s.counters.duration_sum:.3f}")
        lines.append(f"devamb_request_duration_ms_count{_labels(service=s.name)} {cumulative}")
    family("devamb_circuit_open", "gauge", "1 while a target's circuit breaker is open")
    for s in services:
        for name, breaker in s.policy.breakers.items():
            value = int(breaker.state == "open")
            lines.append(f"devamb_circuit_open{_labels(service=s.name, target=name)} {value}")
    family("devamb_endpoint_requests_total", "counter", "exchanges per endpoint of a target")
    family("devamb_endpoint_healthy", "gauge", "1 when an endpoint takes traffic")
    for s in services:
        for target in s.targets.values():
            for endpoint in target.details().get("endpoints", []) or []:
                if not isinstance(endpoint, dict) or "address" not in endpoint:
                    continue
                labels = _labels(service=s.name, target=target.name, endpoint=endpoint["address"])
                if "requests" in endpoint:
                    lines.append(f"devamb_endpoint_requests_total{labels} {endpoint['requests']}")
                if "healthy" in endpoint:
                    healthy = int(bool(endpoint["healthy"]))
                    lines.append(f"devamb_endpoint_healthy{labels} {healthy}")
    return "\n".join(lines) + "\n"
