"""The column layout shared by the traffic list and its header line."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.text import Text

from devamb.control.protocol import ExchangeSummary

from .. import display, wire_view

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
# when the path would get fewer than NARROW_PATH characters (80 columns: 14), the time loses its
# milliseconds and the size goes (80 columns: 25); None leaves a column out
NARROW_PATH = 30
NARROW: dict[str, int | None] = {"Time": 8, "Size": None}
CLIPPED = ("Time",)  # cut without an ellipsis: 00:00:05.500 -> 00:00:05


def widths(total: int) -> list[int | None]:
    narrow = total - sum(width for _, width, _ in COLUMNS) - len(COLUMNS) + 1 < NARROW_PATH
    sizes = [NARROW.get(label, width) if narrow else width for label, width, _ in COLUMNS]
    shown = [size for size in sizes if size is not None]
    flex = max(MIN_FLEX, total - sum(shown) - len(shown) + 1)
    return [None if size is None else size or flex for size in sizes]


Cell = tuple[str, str]  # (text, Rich style string)


def fit(cells: list[Cell], total: int) -> list[Cell]:
    """Pad or cut each cell to its column, separated by spaces: exactly `total` cells wide."""
    out: list[Cell] = []
    for (text, style), width, (label, _, justify) in zip(
        cells, widths(total), COLUMNS, strict=True
    ):
        if width is None:
            continue
        if out:
            out.append((" ", ""))
        length = cell_len(text)
        if length > width and label in CLIPPED:
            text, length = set_cell_size(text, width), width
        elif length > width:
            text, length = set_cell_size(text, max(0, width - 1)) + "…", width
        padding = " " * (width - length)
        out.append((padding + text if justify == "right" else text + padding, style))
    used = sum(cell_len(text) for text, _ in out)
    if used < total:
        out.append((" " * (total - used), ""))
    return out


def line(cells: list[Cell], total: int) -> Text:
    """The cells as one Text line (the header; the list draws segments directly)."""
    text = Text.assemble(*fit(cells, total), no_wrap=True, overflow="ellipsis")
    text.truncate(total)
    return text


def header(total: int) -> Text:
    return line([(label, "bold") for label, _, _ in COLUMNS], total)


def grpc_note(exchange: ExchangeSummary) -> dict[str, Any] | None:
    """The gRPC part of a call's record (names, status, counts), when the call was gRPC."""
    note = exchange.get("notes", {}).get("grpc")
    return note if isinstance(note, dict) else None


def exchange_cells(exchange: ExchangeSummary) -> list[Cell]:
    status = exchange.get("status")
    error = exchange.get("error")
    style = display.status_style(status, error)
    if exchange.get("protocol") == "tcp":
        method, path = "TCP", exchange.get("client", "")
        status_text = "err" if error else "ok"
        style = "bold red" if error else "green"
    elif exchange.get("protocol") in wire_view.WIRE:
        method, path, status_text, style = wire_view.row(exchange)
    elif grpc := grpc_note(exchange):
        method, path = "gRPC", exchange.get("path", "")
        code = grpc.get("code")
        status_text = str(code) if code else ("err" if error else "…")
        style = display.grpc_style(code, error)
    else:
        method, path = exchange.get("method", ""), exchange.get("path", "")
        if status is not None:
            status_text = str(status)
        elif error:
            status_text = "err"
        else:
            status_text = "…" if exchange["duration_ms"] is None else "—"
    if exchange.get("faults"):
        path = "⚡" + path
    size = exchange["bytes_out"] + exchange["bytes_in"]
    return [
        (display.clock(exchange["time"]), "dim"),
        (exchange["service"], ""),
        (exchange["target"], ""),
        (method, "bold"),
        (path, ""),
        (status_text, style),
        (display.duration(exchange["duration_ms"]), ""),
        (display.size(size), "dim"),
    ]
