"""How numbers, times and states are written in the TUI (plain functions, no Textual)."""

from __future__ import annotations

import time as _time

SPARK_BLOCKS = " ▁▂▃▄▅▆▇█"


def clock(timestamp: float) -> str:
    """Local wall-clock time with milliseconds: `15:04:05.123`."""
    seconds = int(timestamp)
    millis = round((timestamp - seconds) * 1000)
    if millis == 1000:
        seconds, millis = seconds + 1, 0
    return _time.strftime("%H:%M:%S", _time.localtime(seconds)) + f".{millis:03d}"


def duration(ms: float | None) -> str:
    """`0.4ms`, `12ms`, `1.25s`; an em dash when unknown (in flight, no samples)."""
    if ms is None:
        return "—"
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.2f}s"


def rate(per_second: float) -> str:
    """Requests per second, compact: `0`, `4.5`, `812`, `2.1k`."""
    if per_second <= 0:
        return "0"
    if per_second < 10:
        return f"{per_second:.1f}"
    if per_second < 1000:
        return f"{per_second:.0f}"
    return f"{per_second / 1000:.1f}k"


def percent(fraction: float) -> str:
    """An error rate (0..1) as `0%`, `0.4%`, `12%`."""
    value = fraction * 100
    if value <= 0:
        return "0%"
    if value < 10:
        return f"{value:.1f}%"
    return f"{value:.0f}%"


def size(count: int) -> str:
    """A byte count: `512B`, `1.5K`, `12M`."""
    if count < 1024:
        return f"{count}B"
    value = float(count)
    for unit in "KMGT":
        value /= 1024
        if value < 10:
            return f"{value:.1f}{unit}"
        if value < 1024:
            return f"{value:.0f}{unit}"
    return f"{value:.0f}P"


def status_style(status: int | None, error: str | None) -> str:
    """The style of an HTTP status (or of an error) in lists."""
    if error:
        return "bold red"
    if status is None:
        return "dim"
    if status >= 500:
        return "red"
    if status >= 400:
        return "yellow"
    if status >= 300:
        return "cyan"
    return "green"


def grpc_style(code: str | None, error: str | None) -> str:
    """The style of a gRPC status name in lists: OK green, a client's own cancel yellow, every
    other code red (the call failed)."""
    if error and code is None:
        return "bold red"
    if code is None:
        return "dim"
    if code == "OK":
        return "green"
    if code == "CANCELLED":
        return "yellow"
    return "red"


def state_style(state: str) -> str:
    """The style of a target state."""
    return STATE_STYLES.get(state, "yellow")


STATE_STYLES = {
    "ready": "green", "reachable": "green", "unknown": "dim",
    **dict.fromkeys(
        ("unavailable", "refused", "dns-failure", "timeout", "tls-failure", "unreachable"), "red"
    ),
}
