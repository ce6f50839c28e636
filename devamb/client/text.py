"""Exchanges as one line of text each: what `devamb traffic` prints and a failed test's
report shows."""

from __future__ import annotations

import time

from devamb.control.protocol import ExchangeSummary
from devamb.wire import WIRE_PROTOCOLS


def exchange_line(exchange: ExchangeSummary) -> str:
    """`    12 14:03:07 payments     staging    503     12.3ms POST /charge  ! error`"""
    when = time.strftime("%H:%M:%S", time.localtime(exchange["time"]))
    if exchange["protocol"] in WIRE_PROTOCOLS:  # the statement or command is its path
        method, path = exchange.get("method") or "", exchange.get("path") or ""
        what = (f"{method} {path}" if method == "CONNECT" else path or method) or "connection"
        result = "err" if exchange["error"] else "ok"
    elif exchange["protocol"] != "tcp":
        what = f"{exchange.get('method', '')} {exchange.get('path', '')}"
        result = str(exchange.get("status") or "-")
        call = (exchange.get("notes") or {}).get("grpc")  # names and status, no messages
        if isinstance(call, dict):
            what = f"{what}  grpc {call.get('code') or '-'}"
    else:
        what, result = "tcp connection", "-"
    error = f"  ! {exchange['error']}" if exchange["error"] else ""
    duration = exchange["duration_ms"]
    ms = "-" if duration is None else f"{duration:.1f}"
    return (
        f"{exchange['id']:>6} {when} {exchange['service']:<12} {exchange['target']:<10} "
        f"{result:>3} {ms:>8}ms {what}{error}"
    )
