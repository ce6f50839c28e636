"""The slow-statement view's normaliser and aggregation (devamb/inspect/slow.py)."""

from __future__ import annotations

import pytest

from devamb.inspect.slow import (
    Sample,
    normalise_redis,
    normalise_sql,
    percentile,
    slowest,
    statement_of,
)


@pytest.mark.parametrize(
    ("sql", "form"),
    [
        ("SELECT * FROM orders WHERE id = 42 AND note = 'it''s'",
         "SELECT * FROM orders WHERE id = ? AND note = ?"),
        ("select a from t where id in (1, 2,3) and x = $1",
         "select a from t where id IN (?) and x = $1"),
        ("select a from t where id IN ($1, $2, $3)", "select a from t where id IN (?)"),
        ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y');", "INSERT INTO t (a, b) VALUES (?, ?)"),
        ("select t1.c2 from t1 where v > 3.5e2 and f = true",
         "select t1.c2 from t1 where v > ? and f = ?"),
        ("SELECT $$a 'b'$$, $tag$x$tag$, E'\\n'", "SELECT ?, ?, ?"),
        ("-- who\nSELECT  1 /* one */\n  FROM   dual", "SELECT ? FROM dual"),
        ("UPDATE accounts2 SET n = n + 1 WHERE id = 7",
         "UPDATE accounts2 SET n = n + ? WHERE id = ?"),
    ],
)  # fmt: skip
def test_sql_literals_become_placeholders(sql: str, form: str) -> None:
    assert normalise_sql(sql) == form


def test_redis_key_numbers_become_placeholders() -> None:
    assert normalise_redis("GET", ["user:42"]) == "GET user:?"
    assert normalise_redis("HSET", ["cart:7:items", "x"]) == "HSET cart:?:items"
    assert normalise_redis("PING") == "PING"


def test_what_is_not_a_statement() -> None:
    assert statement_of("CONNECT", "app@db", {"postgres": {"user": "app"}}) is None
    assert statement_of("NOTIFY", "x", {"sql": {"kind": "notify", "statement": ""}}) is None
    assert statement_of("PUSH", "message ch", {"redis": {"push": "message"}}) is None
    assert statement_of(None, None, None) is None  # a tcp connection
    assert statement_of("GET", "/users/12?x=1", None) == "GET /users/?"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7


def _sql(id: int, statement: str, ms: float, error: str | None = None) -> Sample:
    return Sample(id, "SELECT", statement, {"sql": {"statement": statement, "kind": "simple"}},
                  ms, error)


def test_slowest_groups_by_form_and_orders_by_p99() -> None:
    samples = [_sql(i, f"SELECT * FROM orders WHERE id = {i}", float(i)) for i in range(1, 11)]
    samples += [_sql(20, "SELECT now()", 50.0), _sql(21, "SELECT now()", 1.0, "57014 canceled")]
    samples.append(_sql(22, "SELECT 1", 3.0))
    samples.append(Sample(23, "SELECT", "SELECT 2", {"sql": {"statement": "SELECT 2"}}, None, None))
    view = slowest("db", samples, limit=2)
    assert view["statements"] == 13 and view["forms"] == 3
    first, second = view["slowest"]
    assert first == {"statement": "SELECT now()", "count": 2, "errors": 1, "p50_ms": 1.0,
                     "p99_ms": 50.0, "max_ms": 50.0, "total_ms": 51.0, "slowest_id": 20}
    assert second["statement"] == "SELECT * FROM orders WHERE id = ?"
    assert (second["count"], second["p50_ms"], second["p99_ms"]) == (10, 5.0, 10.0)
    assert second["slowest_id"] == 10
