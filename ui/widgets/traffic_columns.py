"""The column layout shared by the traffic list and its header line."""

from __future__ import annotations

from rich.text import Text

from devamb.control.protocol import ExchangeSummary
from ui import display

# (label, width); width 0 is the flexible column (the path) that takes what is left.
COLUMNS: list[tuple[str, int, str]] = [
    ("Time", 12, "left"),
    ("Service", 10, "left"),
    ("Target", 9, "left"),
    ("Method", 6, "left"),
    ("Path", 0, "left"),
    ("Status", 6, "right"),
    ("Duration", 8, "right"),
    ("Size", 6, "right"),
]
MIN_FLEX = 8


def widths(total: int) -> list[int]:
    fixed = sum(width for _, width, _ in COLUMNS) + len(COLUMNS) - 1
    flex = max(MIN_FLEX, total - fixed)
    return [width or flex for _, width, _ in COLUMNS]


def line(cells: list[Text], total: int) -> Text:
    """Join cells into one line of exactly `total` cells."""
    out = Text(no_wrap=True, overflow="ellipsis")
    for index, (cell, width, (_, _, justify)) in enumerate(
        zip(cells, widths(total), COLUMNS, strict=True)
    ):
        if index:
            out.append(" ")
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        padding = width - cell.cell_len
        if justify == "right":
            out.append(" " * padding)
            out.append_text(cell)
        else:
            out.append_text(cell)
            out.append(" " * padding)
    out.truncate(total, pad=True)
    return out


def header(total: int) -> Text:
    return line([Text(label, style="bold") for label, _, _ in COLUMNS], total)


def exchange_cells(exchange: ExchangeSummary) -> list[Text]:
    status = exchange.get("status")
    error = exchange.get("error")
    style = display.status_style(status, error)
    if exchange.get("protocol") == "tcp":
        method, path = "TCP", exchange.get("client", "")
        status_text = "err" if error else "ok"
        style = "bold red" if error else "green"
    else:
        method, path = exchange.get("method", ""), exchange.get("path", "")
        if status is not None:
            status_text = str(status)
        elif error:
            status_text = "err"
        else:
            status_text = "…" if exchange["duration_ms"] is None else "—"
    size = exchange["bytes_out"] + exchange["bytes_in"]
    return [
        Text(display.clock(exchange["time"]), style="dim"),
        Text(exchange["service"]),
        Text(exchange["target"]),
        Text(method, style="bold"),
        Text.assemble(("⚡", "bold yellow"), path) if exchange.get("faults") else Text(path),
        Text(status_text, style=style),
        Text(display.duration(exchange["duration_ms"])),
        Text(display.size(size), style="dim"),
    ]
