"""How a database exchange (protocol: postgres or redis) reads in the TUI: its traffic row's
method, path and status, and the detail's sections. Plain functions on the recorded JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

WIRE = ("postgres", "redis")


def _note(exchange: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    note = (exchange.get("notes") or {}).get(key)
    return note if isinstance(note, dict) else None


def opaque(exchange: Mapping[str, Any]) -> str | None:
    """Why devamb stopped reading the connection: "opaque (TLS)" for encryption, else the reason."""
    for key in WIRE:
        note = _note(exchange, key)
        if note and note.get("opaque"):
            if note.get("encryption"):
                return f"opaque ({str(note['encryption']).upper()})"
            return f"opaque: {note['opaque']}"
    return None


def row(exchange: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(method, path, status, status style) of a database exchange's traffic row: SQL and the
    statement, REDIS and the command, CONN and the startup for the connection's own record."""
    error = exchange.get("error")
    done = exchange.get("duration_ms") is not None
    status, style = ("err", "bold red") if error else ("ok", "green") if done else ("…", "")
    sql, redis = _note(exchange, "sql"), _note(exchange, "redis")
    path = str(exchange.get("path") or "")
    if sql is not None:
        state = (sql.get("error") or {}).get("sqlstate")
        if error and state:
            status = str(state)
        kind = sql.get("kind")
        method = "SQL" if kind not in ("notify", "cancel") else str(exchange.get("method") or "")
        return method, path, status, style
    if redis is not None and "command" in redis:
        return "REDIS", path, status, style
    if redis is not None and "push" in redis:
        return "PUSH", path, status, style
    # the connection's own record
    if exchange.get("protocol") == "postgres" and path:
        where = path
    else:
        where = str(exchange.get("client") or "")
    hidden = opaque(exchange)
    return "CONN", f"{where}  {hidden}" if hidden else where, status, style


def _grid() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    return table


def statement_table(note: Mapping[str, Any]) -> Table:
    """A PostgreSQL statement: kind, prepared name, result, transaction state, error fields."""
    table = _grid()
    kind = str(note.get("kind") or "")
    if note.get("name"):
        kind += f", prepared statement {note['name']!r}"
    table.add_row("Kind", kind)
    tags = note.get("tags") or ([note["tag"]] if note.get("tag") else [])
    if tags:
        table.add_row("Command tag", ", ".join(str(t) for t in tags))
    if note.get("rows") is not None:
        rows = f"{note['rows']} rows"
        if note.get("columns"):
            rows += f", {note['columns']} columns"
        table.add_row("Rows", rows)
    if note.get("transaction"):
        state = str(note["transaction"])
        table.add_row("Transaction", Text(state, style="bold red" if state == "failed" else ""))
    copy = note.get("copy")
    if isinstance(copy, Mapping):
        table.add_row("COPY", f"{copy.get('direction', '?')}, {copy.get('bytes', 0)} bytes")
    if note.get("channel"):
        table.add_row("Channel", f"{note['channel']}: {note.get('payload', '')}")
    if note.get("skipped"):
        table.add_row("Skipped", "the server skipped it after an earlier error in its batch")
    error = note.get("error")
    if isinstance(error, Mapping):
        injected = "  (injected by a fault)" if error.get("injected") else ""
        table.add_row("SQLSTATE", Text(f"{error.get('sqlstate', '')}{injected}", style="bold red"))
        table.add_row("Message", Text(str(error.get("message", "")), style="red"))
        for key in ("detail", "hint", "table", "constraint", "position"):
            if error.get(key):
                table.add_row(key.title(), str(error[key]))
    return table


def params_table(params: list[Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", justify="right", no_wrap=True)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for index, param in enumerate(params, 1):
        if isinstance(param, Mapping):
            value = str(param.get("value"))
            style = "dim italic" if value == "<redacted>" else ""
            table.add_row(f"${index}", str(param.get("type", "")), Text(value, style=style))
    return table


def command_table(note: Mapping[str, Any]) -> Table:
    """A Redis command: name, keys, arguments' sizes, the reply's summary, db and protocol."""
    table = _grid()
    table.add_row("Command", str(note.get("command", "")))
    if note.get("keys"):
        table.add_row("Keys", ", ".join(str(k) for k in note["keys"]))
    sizes = note.get("sizes") or []
    table.add_row("Arguments", f"{note.get('argc', len(sizes))} ({sum(sizes)} bytes)")
    reply = note.get("reply")
    if isinstance(reply, Mapping):
        table.add_row("Reply", Text(reply_text(reply),
                                    style="bold red" if reply.get("type") == "error" else ""))
    flags = [f for f in ("queued", "blocking", "injected") if note.get(f)]
    if flags:
        table.add_row("Flags", ", ".join(flags))
    table.add_row("Database", f"{note.get('db', 0)} (RESP{note.get('protocol', 2)})")
    return table


def reply_text(reply: Mapping[str, Any]) -> str:
    kind = str(reply.get("type", ""))
    for key, shown in (("text", "{}"), ("message", "{}"), ("value", "{}"),
                       ("size", "{} bytes"), ("length", "{} elements")):
        if reply.get(key) is not None:
            return f"{kind}: {shown.format(reply[key])}"
    return kind


def connection_table(exchange: Mapping[str, Any]) -> Table | None:
    """A connection's startup (postgres: user, database, application_name, auth, server) or
    what the reader says about it (opaque and why); None when nothing was recorded."""
    table = _grid()
    note = _note(exchange, "postgres")
    if note:
        for key, label in (("user", "User"), ("database", "Database"),
                           ("application_name", "Application"), ("auth", "Authentication"),
                           ("server_version", "Server"), ("pid", "Backend pid")):
            if note.get(key) not in (None, ""):
                table.add_row(label, str(note[key]))
    redis = _note(exchange, "redis")
    if redis and redis.get("error"):
        table.add_row("Server error", Text(str(redis["error"]), style="red"))
    hidden = opaque(exchange)
    if hidden:
        table.add_row("Reading", Text(hidden, style="bold yellow"))
        for key in WIRE:
            why = (_note(exchange, key) or {}).get("opaque")
            if why and hidden.startswith("opaque ("):
                table.add_row("", Text(str(why), style="dim"))
    return table if table.row_count else None
