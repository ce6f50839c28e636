"""Fixed database exchanges (a postgres service `db`, a redis service `cache`) for the UI tests'
fake engine, shaped as the engine records them (devamb/wire/postgres.py, resp_follow.py)."""

from __future__ import annotations

import copy
from typing import Any

from devamb.control.protocol import ExchangeSummary, Status
from tests.ui.fake_control import demo_status, exchange, stats, target

STARTUP = {"user": "app", "database": "shop", "application_name": "shop-api", "auth": "sasl",
           "server_version": "15.18", "pid": 4711}  # fmt: skip


def db_status() -> Status:
    status = demo_status()
    status["services"] = [
        {"name": "db", "listen": "127.0.0.1:6432", "protocol": "postgres", "target": "local",
         "targets": [target("local", "url", "tcp://127.0.0.1:5432", "reachable", active=True)],
         "faults": [], "stats": stats(12.0, 0.4, 35.0), "listening": True},
        {"name": "cache", "listen": "127.0.0.1:6380", "protocol": "redis", "target": "local",
         "targets": [target("local", "url", "tcp://127.0.0.1:6379", "reachable", active=True)],
         "faults": [], "stats": stats(20.0, 0.1, 0.4), "listening": True},
    ]  # fmt: skip
    return status


def _sql(number: int, statement: str, ms: float, **note: Any) -> ExchangeSummary:
    error = note.get("error")
    return exchange(
        number, "db", "local", statement.split()[0].upper(), statement, None, ms,
        f"{error['sqlstate']} {error['message']}" if error else None, protocol="postgres",
        notes={"sql": {"statement": statement, "truncated": False, "kind": "simple",
                       "connection": 1, "transaction": "idle", **note}},
    )  # fmt: skip


def _redis(number: int, line: str, ms: float, reply: dict[str, Any]) -> ExchangeSummary:
    name, *args = line.split()
    error = reply.get("message") if reply["type"] == "error" else None
    return exchange(
        number, "cache", "local", name, line, None, ms, error, protocol="redis",
        notes={"redis": {"command": name, "args": [name, *args], "argc": 1 + len(args),
                         "sizes": [len(a) for a in (name, *args)], "keys": args[:1], "db": 0,
                         "protocol": 3, "connection": 2, "reply": reply}},
    )  # fmt: skip


def db_exchanges() -> list[ExchangeSummary]:
    long_select = ("SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = "
                   "o.customer WHERE o.customer = 42 AND o.status IN ('new', 'paid') "
                   "ORDER BY o.id DESC LIMIT 10")
    conflict = {"sqlstate": "40001", "severity": "ERROR", "injected": True,
                "message": "could not serialize access due to concurrent update"}
    duplicate = {"sqlstate": "23505", "severity": "ERROR",
                 "message": 'duplicate key value violates unique constraint "orders_pkey"',
                 "detail": "Key (id)=(7) already exists.", "constraint": "orders_pkey"}
    out = [
        exchange(1, "db", "local", "CONNECT", "app@shop (shop-api)", None, 2.0, None,
                 protocol="postgres", notes={"postgres": dict(STARTUP)}),
        exchange(2, "cache", "local", "", "", None, 1.0, None, protocol="redis"),
        _redis(3, "GET session:42", 0.2, {"type": "bulk", "size": 118, "bytes": 125}),
        _sql(4, "BEGIN", 0.1, tag="BEGIN", transaction="in transaction"),
        _sql(5, "INSERT INTO orders (customer, total) VALUES ($1, $2)", 1.8,
             kind="extended", name="", tag="INSERT 0 1", rows=0, transaction="in transaction",
             params=[{"type": "int4", "value": "42"}, {"type": "numeric", "value": "19.90"}]),
        _sql(6, "COMMIT", 3.1, tag="COMMIT"),
        _sql(7, long_select, 48.0, tag="SELECT 3", rows=3, columns=3),
        _redis(8, "SET session:42 cart-7 EX 300", 0.3, {"type": "status", "text": "OK",
                                                       "bytes": 5}),
        _sql(9, "INSERT INTO orders (id, customer) VALUES (7, 42)", 0.6, error=duplicate),
        _redis(10, "LPUSH session:42 x", 0.1, {"type": "error", "bytes": 68,
                                               "message": "WRONGTYPE Operation against a key "
                                                          "holding the wrong kind of value"}),
        _sql(11, "UPDATE orders SET status = 'paid' WHERE id = 6", 0.1, error=conflict,
             transaction="failed"),
        _redis(12, "INCR orders:count:42", 0.1, {"type": "integer", "value": 8, "bytes": 4}),
        _sql(13, "SELECT pg_sleep(0.25)", 251.0, tag="SELECT 1", rows=1, columns=1),
        exchange(14, "db", "local", "CONNECT", "", None, 9.0, None, protocol="postgres",
                 notes={"postgres": {"encryption_requested": "ssl", "encryption": "tls",
                                     "opaque": "TLS negotiated: the connection is encrypted"}}),
        _sql(15, long_select.replace("42", "43"), 12.0, tag="SELECT 1", rows=1, columns=3),
    ]
    out[10]["faults"] = ["conflict"]
    return out


def db_details() -> dict[int, dict[str, Any]]:
    """The full records the fake's `exchange()` answers, shaped like Redaction.detail()."""
    details = {}
    for item in db_exchanges():
        full: dict[str, Any] = copy.deepcopy(dict(item))
        full.update(url=None, ttfb_ms=None, attempts=1, faults=item.get("faults", []),
                    request_headers=[], response_headers=[])
        details[int(item["id"])] = full
    return details
