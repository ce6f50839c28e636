"""ExchangeDetail: everything the engine recorded about one exchange.

It shows the summary fields always, and the richer fields when the engine sends them:
`request_headers` / `response_headers` (a mapping or a list of pairs), `timings` (name -> ms),
`request_body` / `response_body` (the recorded preview, pretty-printed and highlighted when it is
JSON) with `request_body_size` / `response_body_size`. Any other field is listed as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from devamb.control.protocol import ExchangeSummary
from ui import display

SUMMARY_KEYS = {
    "id", "time", "service", "target", "protocol", "method", "path", "status", "duration_ms",
    "bytes_in", "bytes_out", "error", "client",
}  # fmt: skip
SECTION_KEYS = {
    "request_headers", "response_headers", "timings", "request_body", "response_body",
    "request_body_size", "response_body_size",
}  # fmt: skip


def summary_table(exchange: ExchangeSummary) -> Table:
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
    if exchange.get("protocol") != "tcp":
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
    rows += [
        ("Duration", display.duration(exchange["duration_ms"])),
        ("Sent", f"{display.size(exchange['bytes_in'])} to upstream"),
        ("Received", f"{display.size(exchange['bytes_out'])} from upstream"),
    ]
    if error:
        rows.append(("Error", Text(error, style="bold red")))
    for label, value in rows:
        table.add_row(label, value)
    return table


def headers_table(headers: Mapping[str, Any] | Iterable[Any]) -> Table:
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
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        body = json.dumps(body)
    try:
        parsed = json.loads(body)
    except ValueError:
        return Text(body)
    return Syntax(
        json.dumps(parsed, indent=2, ensure_ascii=False),
        "json",
        theme="ansi_dark" if dark else "ansi_light",
        word_wrap=True,
    )


class ExchangeDetail(Screen):
    """Full-screen detail of one exchange; Esc goes back to the list."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, exchange: ExchangeSummary) -> None:
        super().__init__()
        self.exchange = exchange

    def compose(self) -> ComposeResult:
        exchange: dict[str, Any] = dict(self.exchange)
        dark = self.app.current_theme.dark
        yield Header()
        with VerticalScroll(id="detail"):
            yield self._section("Summary", summary_table(self.exchange))
            recorded = False
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
                if body is not None:
                    recorded = True
                    title = f"{side.title()} body"
                    total = exchange.get(f"{side}_body_size")
                    if total is not None:
                        title += f" ({display.size(int(total))})"
                    yield self._section(title, body_renderable(body, dark))
            extra = {k: v for k, v in exchange.items() if k not in SUMMARY_KEYS | SECTION_KEYS}
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

    @staticmethod
    def _section(title: str, body: RenderableType) -> Static:
        section = Static(body, classes="detail-section")
        section.border_title = title
        return section
