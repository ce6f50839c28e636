"""The slow-statement view: a service's recorded statements grouped by their normalised form.

Computed on request from the exchanges the store keeps (at most `keep` a service), so it costs
nothing on the relay's path and its memory is bounded by the store's. A statement's form:

- PostgreSQL: the SQL with comments dropped, runs of spaces made one, literals (strings,
  numbers, booleans) made `?`, an `IN (…)` list and a multi-row `VALUES` made one item;
- Redis: the command's name and its first key with every run of digits made `?`
  (`GET user:?`), the name alone for a command without keys;
- anything else (HTTP): the method and the path without its query, digit runs made `?`.

Connection records, pushes (pub/sub, NOTIFY) and cancel requests are not statements.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LIMIT = 10
SHOWN_CHARS = 500  # of a normalised statement

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r"(?:[EeBbXxNn]|[Uu]&)?'(?:[^']|'')*'")
_DOLLAR = re.compile(r"\$((?:[A-Za-z_]\w*)?)\$.*?\$\1\$", re.S)
_NUMBER = re.compile(r"(?<![\w$.])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_BOOLEAN = re.compile(r"\b(?:TRUE|FALSE)\b", re.I)
_PLACEHOLDER = r"(?:\?|\$\d+)"
_IN_LIST = re.compile(rf"\bIN\s*\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)", re.I)
_ROW = rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)"
_VALUES = re.compile(rf"\bVALUES\s*({_ROW})(?:\s*,\s*{_ROW})+", re.I)
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_NOT_STATEMENTS = {"notify", "cancel"}


def normalise_sql(sql: str) -> str:
    """`SELECT * FROM t WHERE id = 42 AND name = 'x'` -> `SELECT * FROM t WHERE id = ? AND
    name = ?`; `IN (1, 2, 3)` -> `IN (?)`; `VALUES (1, 'a'), (2, 'b')` -> `VALUES (?, ?)`."""
    text = _COMMENTS.sub(" ", sql)
    text = _DOLLAR.sub("?", text)
    text = _STRING.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _BOOLEAN.sub("?", text)
    text = _SPACES.sub(" ", text).strip().rstrip(";").rstrip()
    text = _IN_LIST.sub("IN (?)", text)
    text = _VALUES.sub(lambda m: "VALUES " + _SPACES.sub(" ", m.group(1)), text)
    return text[:SHOWN_CHARS]


def normalise_redis(command: str, keys: Iterable[Any] = ()) -> str:
    """`GET user:42` -> `GET user:?`; a command without keys is its name."""
    first = next(iter(keys), None)
    if first is None:
        return command
    return f"{command} {_DIGITS.sub('?', str(first))[:SHOWN_CHARS]}"


def statement_of(
    method: str | None, path: str | None, notes: Mapping[str, Any] | None
) -> str | None:
    """The normalised form of one exchange, or None when it is not a statement."""
    notes = notes or {}
    sql = notes.get("sql")
    if isinstance(sql, Mapping):
        if sql.get("kind") in _NOT_STATEMENTS or not sql.get("statement"):
            return None
        return normalise_sql(str(sql["statement"]))
    redis = notes.get("redis")
    if isinstance(redis, Mapping):
        if "command" not in redis:  # the connection's record, a push
            return None
        return normalise_redis(str(redis["command"]), redis.get("keys") or ())
    if "postgres" in notes or not method:  # a postgres connection's record; tcp
        return None
    route = (path or "").split("?", 1)[0]
    return f"{method} {_DIGITS.sub('?', route)}"


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank on sorted values."""
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Group:
    durations: list[float] = field(default_factory=list)
    errors: int = 0
    slowest_id: int | None = None
    slowest: float = -1.0


@dataclass(frozen=True)
class Sample:
    """One finished exchange, as much as the view needs."""

    id: int
    method: str | None
    path: str | None
    notes: Mapping[str, Any] | None
    duration_ms: float | None
    error: str | None


def slowest(service: str, samples: Iterable[Sample], limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The `limit` slowest statement forms of a service, by p99 (then p50, count), with counts,
    errors, p50/p99/max/total ms and the id of each form's slowest exchange."""
    groups: dict[str, _Group] = {}
    counted = 0
    for sample in samples:
        if sample.duration_ms is None:
            continue
        form = statement_of(sample.method, sample.path, sample.notes)
        if form is None:
            continue
        counted += 1
        group = groups.setdefault(form, _Group())
        group.durations.append(sample.duration_ms)
        if sample.error:
            group.errors += 1
        if sample.duration_ms > group.slowest:
            group.slowest, group.slowest_id = sample.duration_ms, sample.id
    rows: list[dict[str, Any]] = []
    for form, group in groups.items():
        ordered = sorted(group.durations)
        rows.append({
            "statement": form, "count": len(ordered), "errors": group.errors,
            "p50_ms": round(percentile(ordered, 0.5), 3),
            "p99_ms": round(percentile(ordered, 0.99), 3),
            "max_ms": round(ordered[-1], 3), "total_ms": round(sum(ordered), 3),
            "slowest_id": group.slowest_id,
        })
    rows.sort(key=lambda r: (-r["p99_ms"], -r["p50_ms"], -r["count"], r["statement"]))
    return {"service": service, "statements": counted, "forms": len(rows),
            "slowest": rows[:max(0, limit)]}


def samples_of(summaries: Iterable[Mapping[str, Any]]) -> Iterable[Sample]:
    """Samples from exchange summaries (what the control API lists)."""
    for item in summaries:
        yield Sample(int(item["id"]), item.get("method"), item.get("path"), item.get("notes"),
                     item.get("duration_ms"), item.get("error"))
