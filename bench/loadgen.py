"""The load generator: wrk with --latency, pinned to the load CPU, and a parser for its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from procs import pinned

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkError(RuntimeError):
    """wrk failed or printed something we cannot read."""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass(frozen=True)
class Load:
    connections: int
    threads: int
    seconds: int
    close: bool = False  # a new connection per request (`Connection: close`)


def wrk_argv(url: str, load: Load) -> list[str]:
    argv = ["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds}s"]
    argv += ["--timeout", "5s", "--latency"]
    if load.close:
        argv += ["-H", "Connection: close"]
    return [*argv, url]


def run_wrk(url: str, load: Load, cpu: int | None) -> WrkResult:
    argv = pinned(wrk_argv(url, load), cpu)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=load.seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> WrkResult:
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    percentiles = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _PERCENTILE.findall(text)}
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise WrkError(f"cannot read wrk output:\n{text[:500]}")
    socket_errors = _SOCKET_ERRORS.search(text)
    non_2xx = _NON_2XX.search(text)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total.group(1)),
        errors=errors,
    )
