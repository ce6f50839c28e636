"""Human-readable output of the CLI (tables via rich); --json output bypasses this module."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, cast

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devamb.control.protocol import ExchangeSummary, ServiceStats, Status, TargetStatus
from devamb.profile.units import format_setting

console = Console(width=None if sys.stdout.isatty() else 160)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _address(target: TargetStatus) -> str:
    """Where the target points; for containers, why nothing is there, or where they are."""
    details = target.get("details") or {}
    if details.get("reason"):
        return str(details["reason"])
    endpoints = details.get("endpoints")
    if isinstance(endpoints, list) and endpoints and all(isinstance(e, str) for e in endpoints):
        return ", ".join(endpoints)
    return target["address"]


def _state(target: TargetStatus) -> str:
    """The target's own state, and its circuit breaker's when that is not closed."""
    breaker = target.get("breaker")
    if breaker and breaker["state"] != "closed":
        return f"{target['state']}, circuit {breaker['state']}"
    return target["state"]


def _endpoint_problems(target: TargetStatus) -> list[str]:
    """One line per pool endpoint that cannot take traffic: its failed connection, its
    ejection or its failing health check."""
    endpoints = (target.get("details") or {}).get("endpoints")
    if not isinstance(endpoints, list):
        return []
    lines = []
    for endpoint in endpoints:
        if not isinstance(endpoint, dict):
            continue
        reach = endpoint.get("reach") or {}
        name = escape(str(endpoint.get("endpoint", "?")))
        if reach.get("reason"):
            lines.append(
                f"[red]{reach['state']}[/] {name} ({escape(str(reach['address']))}): "
                f"{escape(str(reach['reason']))}"
            )
        elif endpoint.get("ejected"):
            lines.append(f"[red]ejected[/] {name} for {endpoint.get('ejected_for_s')}s more")
        elif endpoint.get("health") == "unhealthy":
            lines.append(f"[red]unhealthy[/] {name}: {escape(str(endpoint.get('health_reason')))}")
    return lines


BASTION_COLOURS = {"up": "green", "down": "red", "connecting": "yellow", "idle": "dim"}


def print_bastions(bastions: list[dict[str, Any]]) -> None:
    """One line per SSH bastion: state (and why it is down), rtt, channels, bytes."""
    for b in bastions:
        colour = BASTION_COLOURS.get(str(b.get("state")), "white")
        rtt = "-" if b.get("rtt_ms") is None else f"{b['rtt_ms']:.1f} ms"
        line = (
            f"  bastion [bold]{escape(str(b['name']))}[/] {escape(str(b.get('address', '')))}: "
            f"[{colour}]{b.get('state')}[/] · rtt {rtt} · {b.get('channels', 0)} channels open "
            f"({b.get('channels_total', 0)} in all) · {b.get('bytes_out', 0)} B out, "
            f"{b.get('bytes_in', 0)} B in"
        )
        if b.get("reason"):
            line += f"\n    [red]{escape(str(b['reason']))}[/]"
        elif b.get("last_error"):
            line += f"\n    [dim]last error: {escape(str(b['last_error']))}[/]"
        console.print(line, highlight=False)


def print_status(status: Status) -> None:
    engine = status["engine"]
    console.print(
        f"[bold]{status['name']}[/] · {status['profile']} · engine pid {engine['pid']}"
        f" · devamb {engine['version']}"
    )
    table = Table(box=None, pad_edge=False)
    columns = (
        "service",
        "listen",
        "proto",
        "target",
        "address",
        "state",
        "req",
        "err",
        "req/s",
        "p50 ms",
        "p99 ms",
    )
    for column in columns:
        numeric = column in ("req", "err", "req/s", "p50 ms", "p99 ms")
        table.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=True,
            overflow="ellipsis",
            max_width=40 if column == "address" else None,
        )
    for service in status["services"]:
        active = next(t for t in service["targets"] if t["active"])
        stats = service["stats"]
        table.add_row(
            service["name"],
            service["listen"],
            service["protocol"],
            service["target"],
            f"[dim]{_address(active)}[/]",
            _state(active),
            str(stats["requests"]),
            str(stats["errors"]),
            f"{stats['rate']:.1f}",
            _ms(stats["p50_ms"]),
            _ms(stats["p99_ms"]),
        )
    console.print(table)
    for service in status["services"]:
        for target in service["targets"]:
            for container in target.get("details", {}).get("containers", []) or []:
                console.print(
                    f"  [dim]{service['name']}/{target['name']}:[/] {container.get('name')} "
                    f"{str(container.get('id', ''))[:12]} {container.get('state')} "
                    f"{container.get('address') or ''}", highlight=False,
                )
    for service in status["services"]:
        for target in service["targets"]:
            connections = target.get("connections")
            if connections and (connections["draining"] or (
                    connections["open"] and not target["active"])):
                waiting = (f", {connections['draining']} waiting for a safe point to close"
                           if connections["draining"] else "")
                console.print(f"  [dim]{service['name']}/{target['name']}:[/] "
                              f"{connections['open']} connection(s) still open{waiting}",
                              highlight=False)
            reach = (target.get("details") or {}).get("reach") or {}
            if reach.get("reason"):
                console.print(
                    f"  [dim]{service['name']}/{target['name']}:[/] [red]{reach['state']}[/]"
                    f" {reach['address']}: {reach['reason']}", highlight=False,
                )
            for line in _endpoint_problems(target):
                console.print(
                    f"  [dim]{service['name']}/{target['name']}:[/] {line}", highlight=False
                )
        # the mirror's own counters; ServiceStats does not declare the key (control/protocol.py)
        mirror = cast("ServiceStats | None", service["stats"].get("mirror"))
        if mirror:
            console.print(
                f"  [dim]{service['name']} mirror copies (not in the numbers above):[/] "
                f"{mirror['requests']} req, {mirror['errors']} err, "
                f"p99 {_ms(mirror['p99_ms'])} ms", highlight=False,
            )
    print_bastions(status.get("bastions") or [])
    for error in status["errors"]:
        console.print(f"[red]error:[/] {error}")


def print_exchange(exchange: ExchangeSummary, as_json: bool) -> None:
    from devamb.client.text import exchange_line  # the client package: not for `status`

    print(json.dumps(exchange) if as_json else exchange_line(exchange), flush=True)


def print_faults(faults: dict[str, list[dict[str, Any]]]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("service", "fault", "kind", "state", "probability", "settings", "fired"):
        table.add_column(column, no_wrap=True, justify="right" if column == "fired" else "left")
    for service, items in faults.items():
        for item in items:
            settings = " ".join(f"{k}={format_setting(k, v)}" for k, v in item["params"].items()
                                if v not in ({}, ""))
            if item.get("match"):
                settings += f" match={item['match']}"
            table.add_row(service, item["name"], item["kind"], "on" if item["enabled"] else "off",
                          f"{item['probability']:g}", settings.strip(), str(item["fired"]))
    if not table.rows:
        console.print("no faults")
        return
    console.print(table)


def print_detail(detail: dict[str, Any]) -> None:
    """One exchange: request and response with headers and rendered bodies."""
    console.print(f"[bold]#{detail['id']}[/] {detail['service']} → {detail['target']}"
                  f"  {detail.get('url') or ''}")
    total, first = _ms(detail.get("duration_ms")), _ms(detail.get("ttfb_ms"))
    timing = f"{total} ms total, first byte {first} ms"
    console.print(f"[dim]{timing}; faults: {', '.join(detail.get('faults') or []) or 'none'}[/]")
    if detail.get("error"):
        console.print(f"[red]error:[/] {detail['error']}")
    for side, title in (("request", f"{detail.get('method', '')} {detail.get('path', '')}"),
                        ("response", str(detail.get("status") or "-"))):
        console.rule(f"{side}: {title}")
        for name, value in detail.get(f"{side}_headers") or []:
            console.print(f"[cyan]{name}[/]: {value}", highlight=False)
        body = detail.get(f"{side}_body") or {}
        if body.get("size") and detail.get("messages") is None:  # a WebSocket's: below
            note = " (truncated)" if body.get("truncated") else ""
            console.print(f"[dim]{body['kind']} body, {body['size']} bytes{note}[/]")
            console.print(body.get("text", ""), highlight=False, markup=False)
    if detail.get("messages") is not None:
        _print_messages(detail["messages"], int(detail.get("messages_dropped") or 0))
    call = (detail.get("notes") or {}).get("grpc")
    if call is not None:
        _print_grpc(call)
    statement = (detail.get("notes") or {}).get("sql")
    if isinstance(statement, dict):
        _print_sql(statement)
    connection = (detail.get("notes") or {}).get("postgres")
    if isinstance(connection, dict):
        console.rule("postgres connection")
        for key, value in connection.items():
            console.print(f"[cyan]{key}[/]: {value}", highlight=False)


def _print_sql(note: dict[str, Any]) -> None:
    """A PostgreSQL statement: parameters, outcome, transaction state."""
    outcome = note.get("tag") or ("error" if note.get("error") else "-")
    console.rule(f"sql ({note.get('kind')}): {outcome}")
    if note.get("name"):
        console.print(f"[dim]prepared statement[/] {note['name']}", highlight=False)
    for i, param in enumerate(note.get("params") or [], 1):
        console.print(f"${i} {param.get('type')}: {param.get('value')}", highlight=False,
                      markup=False)
    parts = [f"{note.get('rows', 0)} row(s)", f"transaction {note.get('transaction', '?')}"]
    if note.get("copy"):
        parts.append(f"copy {note['copy'].get('direction')} {note['copy'].get('bytes')} B")
    console.print(f"[dim]{', '.join(parts)}[/]", highlight=False)
    error = note.get("error")
    if isinstance(error, dict):
        for key in ("sqlstate", "severity", "message", "detail", "hint"):
            if error.get(key):
                console.print(f"[red]{key}[/]: {error[key]}", highlight=False)


def _print_grpc(call: dict[str, Any]) -> None:
    """A gRPC call's status and messages, decoded (JSON) or raw (field numbers)."""
    code = call.get("code") or "no status"
    message = f": {call['message']}" if call.get("message") else ""
    console.rule(f"grpc /{call.get('service')}/{call.get('method')}: {code}{message}")
    console.print(f"[dim]{call.get('requests', 0)} request(s), {call.get('responses', 0)} "
                  f"response(s); decoded with: {call.get('schema')}[/]")
    for item in call.get("messages") or []:
        arrow = "→" if item.get("dir") == "request" else "←"
        kind = item.get("type") or "raw"
        console.print(f"{arrow} {kind} {item.get('size', 0)} B"
                      + (" compressed" if item.get("compressed") else ""), highlight=False)
        shown = item["json"] if item.get("json") is not None else item.get("raw")
        if shown is not None:
            console.print(json.dumps(shown, ensure_ascii=False), highlight=False, markup=False)
        if item.get("error"):
            console.print(f"[red]{item['error']}[/]", highlight=False)


def message_line(message: dict[str, Any], width: int = 100) -> str:
    """One WebSocket message: `12:00:01.250 → text 5 B  hello` (→ to the upstream)."""
    arrow = "→" if message.get("direction") == "upstream" else "←"
    moment = time.strftime("%H:%M:%S", time.localtime(message.get("time") or 0))
    millis = int(((message.get("time") or 0) % 1) * 1000)
    data = str(message.get("data", ""))
    if message.get("encoding") == "base64":
        data = f"(base64) {data}"
    if message.get("code") is not None:
        data = f"{message['code']} {data}".rstrip()
    shown = data.replace("\n", "\\n")
    if len(shown) > width or message.get("truncated"):
        shown = shown[:width] + "…"
    kind, size = message.get("type", "?"), message.get("size", 0)
    return f"{moment}.{millis:03d} {arrow} {kind:<6} {size:>7} B  {shown}"


def _print_messages(messages: list[dict[str, Any]], dropped: int) -> None:
    more = f", {dropped} more not kept" if dropped else ""
    console.rule(f"websocket messages: {len(messages)}{more}")
    for message in messages:
        console.print(message_line(message), highlight=False, markup=False)


def print_diff(differences: list[dict[str, Any]]) -> None:
    if not differences:
        console.print("[green]no differences[/] (volatile headers ignored)")
        return
    for item in differences:
        left = json.dumps(item.get("left"))
        right = json.dumps(item.get("right"))
        console.print(f"[yellow]{item['path']}[/]: {left} → {right}", highlight=False)
