"""ExchangeDetail: everything the engine recorded about one exchange.

It opens on the summary from the traffic list and, when given a `load` callable, replaces it with
the engine's full record once that arrives. It shows the summary fields always, and the richer
fields when present: `url`, `ttfb_ms`, `attempts`, `faults`; `request_headers` /
`response_headers` (a mapping or a list of pairs); `timings` (name -> ms); `request_body` /
`response_body` (the recorded preview as text or bytes, pretty-printed and highlighted when it
is JSON) with `request_body_size` / `response_body_size`; a WebSocket's `messages` as a list
(time, direction, type, size, preview). Any other field is listed as it is.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from devamb.control.protocol import ExchangeSummary

from .. import display, wire_view

SUMMARY_KEYS = {
    "id", "time", "service", "target", "protocol", "method", "path", "status", "duration_ms",
    "bytes_in", "bytes_out", "error", "client",
}  # fmt: skip
SECTION_KEYS = {
    "request_headers", "response_headers", "timings", "request_body", "response_body",
    "request_body_size", "response_body_size", "url", "ttfb_ms", "attempts", "faults",
    "redacted", "messages", "messages_dropped",
}  # fmt: skip
Loader = Callable[[int], Awaitable["dict[str, Any] | None"]]


def summary_table(exchange: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    status = exchange.get("status")
    error = exchange.get("error")
    rows: list[tuple[str, RenderableType]] = [
        ("Exchange", f"#{exchange['id']}  ({exchange.get('protocol', 'http')})"),
        ("Time", display.clock(exchange["time"])),
        ("Service", f"{exchange['service']} → {exchange['target']}"),
        ("Client", exchange.get("client", "")),
    ]
    if exchange.get("url"):
        rows.append(("Upstream", str(exchange["url"])))
    if exchange.get("protocol") in wire_view.WIRE:
        *_, status_text, style = wire_view.row(exchange)
        rows.append(("Status", Text(status_text, style=style)))
    elif exchange.get("protocol") != "tcp":
        rows.append(("Request", Text(f"{exchange.get('method', '')} {exchange.get('path', '')}")))
        rows.append(
            (
                "Status",
                Text(
                    str(status) if status is not None else "no response",
                    style=display.status_style(status, error),
                ),
            )
        )
    if exchange.get("ttfb_ms") is not None:
        rows.append(("First byte", display.duration(exchange["ttfb_ms"])))
    rows += [
        ("Duration", display.duration(exchange["duration_ms"])),
        ("Sent", f"{display.size(exchange['bytes_in'])} to upstream"),
        ("Received", f"{display.size(exchange['bytes_out'])} from upstream"),
    ]
    if (exchange.get("attempts") or 1) > 1:
        rows.append(("Attempts", str(exchange["attempts"])))
    if exchange.get("faults"):
        rows.append(("Faults", Text("⚡" + ", ".join(exchange["faults"]), style="bold yellow")))
    if error:
        rows.append(("Error", Text(error, style="bold red")))
    if exchange.get("redacted"):
        rows.append(("Redaction", Text("on: secrets and named fields are masked", style="dim")))
    for label, value in rows:
        table.add_row(label, value)
    return table


SCHEMAS = {
    "proto": "the profile's .proto files", "descriptor_set": "the profile's descriptor set",
    "reflection": "the upstream's server reflection", "raw": "the wire format (no schema)",
}


def grpc_table(note: Mapping[str, Any]) -> Table:
    """A gRPC call: its method, status and message counts."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("Call", f"/{note.get('service', '')}/{note.get('method', '')}")
    code, number = note.get("code"), note.get("status")
    if code is not None:
        status = Text(f"{code} ({number})", style=display.grpc_style(code, None))
        if note.get("message"):
            status.append(f"  {note['message']}")
        table.add_row("gRPC status", status)
    else:
        table.add_row("gRPC status", Text("none (the call did not end with a status)", "dim"))
    table.add_row("Messages", f"{note.get('requests', 0)} sent, {note.get('responses', 0)} "
                              "received")
    if note.get("schema"):
        table.add_row("Decoded with", SCHEMAS.get(str(note["schema"]), str(note["schema"])))
    return table


def grpc_message(message: Mapping[str, Any], dark: bool) -> tuple[str, RenderableType]:
    """One gRPC message: its title (direction, type, size) and its decoded body."""
    request = message.get("dir") == "request"
    kind = message.get("type") or "message"
    facts = [display.size(int(message.get("size") or 0))]
    if message.get("compressed"):
        facts.append("compressed")
    title = f"{'→ Request' if request else '← Response'} {kind} ({', '.join(facts)})"
    if message.get("json") is not None:
        body: RenderableType = _json_syntax(
            json.dumps(message["json"], indent=2, ensure_ascii=False), dark
        )
    elif message.get("raw") is not None:
        body = _json_syntax(json.dumps(message["raw"], indent=2, ensure_ascii=False), dark)
    else:
        body = Text("not decoded", style="dim")
    if message.get("error"):
        error = Text(f"decode error: {message['error']}", style="bold red")
        body = Group(error, body)
    return title, body


def headers_table(headers: Mapping[str, Any] | Iterable[list[Any] | tuple[Any, Any]]) -> Table:
    """Headers as a mapping, or as the engine records them: [name, value] pairs."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for name, value in pairs:
        table.add_row(f"{name}:", str(value))
    return table


def timings_table(timings: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in timings.items():
        shown = display.duration(float(value)) if isinstance(value, int | float) else str(value)
        table.add_row(name, shown)
    return table


def body_renderable(body: Any, dark: bool) -> RenderableType:
    """A body as recorded: the engine's body record, or plain text or bytes."""
    if isinstance(body, Mapping):
        kind, text = body.get("kind"), str(body.get("text", ""))
        if kind == "json":
            return _json_syntax(text, dark)
        if kind == "binary":
            return Text(text, style="dim")
        return Text(text)
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return Text(f"binary data ({display.size(len(body))} recorded)", style="dim")
    if not isinstance(body, str):
        body = json.dumps(body)
    try:
        parsed = json.loads(body)
    except ValueError:
        return Text(body)
    return _json_syntax(json.dumps(parsed, indent=2, ensure_ascii=False), dark)


def messages_table(messages: Iterable[Mapping[str, Any]]) -> Table:
    """A WebSocket's messages, one a row: → to the upstream, ← from it."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(overflow="ellipsis", no_wrap=True)
    for message in messages:
        up = message.get("direction") == "upstream"
        data = str(message.get("data", ""))
        if message.get("encoding") == "base64":
            data = f"(base64) {data}"
        if message.get("code") is not None:
            data = f"{message['code']} {data}".rstrip()
        table.add_row(
            display.clock(float(message.get("time") or 0)),
            Text("→" if up else "←", style="cyan" if up else "green"),
            str(message.get("type", "")),
            display.size(int(message.get("size") or 0)),
            Text(data.replace("\n", "\\n") + ("…" if message.get("truncated") else "")),
        )
    return table


def _json_syntax(text: str, dark: bool) -> Syntax:
    return Syntax(text, "json", theme="ansi_dark" if dark else "ansi_light", word_wrap=True)


def body_title(side: str, body: Any, total: Any) -> str:
    """`Response body (application/json, 1.2K)` or `(first 64K of 3.0M)` when truncated."""
    if isinstance(body, Mapping):
        total, captured = body.get("size"), body.get("captured")
        content_type = body.get("content_type")
    else:
        captured, content_type = len(body), None
    facts = [str(content_type)] if content_type else []
    if isinstance(total, int) and isinstance(captured, int) and total > captured:
        facts.append(f"first {display.size(captured)} of {display.size(total)}")
    elif isinstance(total, int):
        facts.append(display.size(total))
    return f"{side.title()} body" + (f" ({', '.join(facts)})" if facts else "")


def has_body(body: Any) -> bool:
    if isinstance(body, Mapping):
        return bool(body.get("size") or body.get("text"))
    return bool(body)


class ExchangeDetail(Screen[None]):
    """Full-screen detail of one exchange; Esc goes back to the list."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, exchange: ExchangeSummary, load: Loader | None = None) -> None:
        super().__init__()
        self.exchange: Mapping[str, Any] = exchange
        self.load = load
        self.connection: Mapping[str, Any] | None = None  # a statement's connection record

    def compose(self) -> ComposeResult:
        exchange: dict[str, Any] = dict(self.exchange)
        dark = self.app.current_theme.dark
        yield Header()
        with VerticalScroll(id="detail"):
            yield self._section("Summary", summary_table(exchange))
            recorded = False
            if exchange.get("protocol") in wire_view.WIRE:
                yield from self._wire_sections(exchange, dark)
                recorded = True
            grpc = (exchange.get("notes") or {}).get("grpc")
            if isinstance(grpc, Mapping):
                yield self._section("gRPC", grpc_table(grpc))
                for message in grpc.get("messages") or ():  # the call's point: before headers
                    recorded = True
                    yield self._section(*grpc_message(message, dark))
            for side in ("request", "response"):
                headers = exchange.get(f"{side}_headers")
                if headers:
                    recorded = True
                    yield self._section(f"{side.title()} headers", headers_table(headers))
            if exchange.get("timings"):
                recorded = True
                yield self._section("Timings", timings_table(exchange["timings"]))
            for side in ("request", "response"):
                body = exchange.get(f"{side}_body")
                if isinstance(grpc, Mapping) and grpc.get("messages"):
                    break  # the decoded messages above are the bodies
                if exchange.get("protocol") in wire_view.WIRE:
                    break  # the statement or command above is the request
                if has_body(body) and exchange.get("messages") is None:  # a WebSocket's: below
                    recorded = True
                    title = body_title(side, body, exchange.get(f"{side}_body_size"))
                    yield self._section(title, body_renderable(body, dark))
            messages = exchange.get("messages")
            if messages:
                recorded = True
                dropped = exchange.get("messages_dropped") or 0
                more = f", {dropped} more not kept" if dropped else ""
                yield self._section(f"WebSocket messages ({len(messages)}{more})",
                                    messages_table(messages))
            extra = {k: v for k, v in exchange.items() if k not in SUMMARY_KEYS | SECTION_KEYS}
            shown = {"grpc", "sql", "redis", "postgres"}
            notes = {k: v for k, v in (extra.pop("notes", None) or {}).items() if k not in shown}
            if notes:
                extra["notes"] = notes
            if extra:
                yield self._section(
                    "More", headers_table({k: json.dumps(v) for k, v in extra.items()})
                )
            if not recorded:
                yield Static(
                    "Headers, timings and bodies are not recorded for this exchange.",
                    classes="detail-note",
                )
        yield Footer()

    def on_mount(self) -> None:
        exchange = self.exchange
        self.title = f"Exchange #{exchange['id']}"
        self.sub_title = f"{exchange['service']} → {exchange['target']}"
        self.query_one("#detail").focus()
        if self.load is not None:
            self.run_worker(self._load_full(), exclusive=True)

    async def _load_full(self) -> None:
        assert self.load is not None
        full = await self.load(int(self.exchange["id"]))
        if full:
            self.exchange = full
            notes = full.get("notes") or {}
            connection = next((n.get("connection") for n in (notes.get("sql"), notes.get("redis"))
                               if isinstance(n, Mapping) and n.get("connection")), None)
            if isinstance(connection, int) and connection != full.get("id"):
                self.connection = await self.load(connection)  # gone from the store: None
            await self.recompose()
            self.query_one("#detail").focus()

    def _wire_sections(self, exchange: Mapping[str, Any], dark: bool) -> ComposeResult:
        """A database exchange: the statement or command in full, its parameters, its result,
        and its connection's startup."""
        notes = exchange.get("notes") or {}
        sql, redis = notes.get("sql"), notes.get("redis")
        if isinstance(sql, Mapping) and sql.get("statement"):
            cut = " (the first 64K)" if sql.get("truncated") else ""
            yield self._section(f"SQL{cut}", Syntax(str(sql["statement"]), "sql", word_wrap=True,
                                                    theme="ansi_dark" if dark else "ansi_light"))
            if sql.get("params"):
                yield self._section(f"Parameters ({len(sql['params'])})",
                                    wire_view.params_table(list(sql["params"])))
            yield self._section("Result", wire_view.statement_table(sql))
        elif isinstance(redis, Mapping) and "command" in redis:
            yield self._section("Command", Text(str(exchange.get("path") or redis["command"])))
            yield self._section("Reply", wire_view.command_table(redis))
        own = wire_view.connection_table(exchange)
        if own is not None:
            yield self._section("Connection", own)
        elif self.connection is not None:
            table = wire_view.connection_table(self.connection)
            title = f"Connection #{self.connection.get('id')}"
            if table is not None:
                yield self._section(title, table)

    @staticmethod
    def _section(title: str, body: RenderableType) -> Static:
        section = Static(body, classes="detail-section")
        section.border_title = title
        return section
