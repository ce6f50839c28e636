"""Profile validation of postgres services: keys, command-level faults, at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

from devamb.engine.assembly import load_profile
from tests.conftest import problems

GOOD = """\
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    redact_params: true
    on_switch: close
    targets: {a: "tcp://127.0.0.1:5432"}
    faults:
      conflict: {kind: error, sqlstate: '40001', match: {sql: "insert into orders"}, times: 1}
      slow: {kind: latency, delay: 100ms, match: {sql: "select*from reports*"}}
      cut: {kind: reset, match: {sql: "update payments"}}
      plain: {kind: bandwidth, rate: 1KiB}
scenarios:
  s:
    steps:
      - {at: 0s, service: db, add: {kind: error, sqlstate: 57014, match: {sql: "update"}}}
"""


def test_a_postgres_service_with_command_faults_loads(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(GOOD)
    spec = load_profile(path).services["db"]
    assert spec.protocol == "postgres" and spec.redact_params and spec.on_switch == "close"
    assert spec.faults["conflict"].params.sqlstate == "40001"
    assert spec.faults["conflict"].per_command and not spec.faults["plain"].per_command
    assert spec.faults["slow"].match is not None
    assert spec.faults["slow"].match.matches_command({"sql": "SELECT *  FROM reports r"})
    assert not spec.faults["slow"].match.matches_command({"sql": "SELECT 1"})


def test_bad_postgres_settings_are_reported_precisely(tmp_path: Path) -> None:
    text = """\
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    on_switch: later
    targets: {a: "tcp://127.0.0.1:5432"}
    faults:
      a: {kind: error, sqlstate: 4001}
      b: {kind: error}
      c: {kind: bandwidth, rate: 1KiB, match: {sql: x}}
      d: {kind: latency, delay: 1s, match: {path: /x}}
      e: {kind: error, sqlstate: '40001', reply: "-ERR no"}
  raw:
    listen: 0
    protocol: tcp
    on_switch: drain
    redact_params: true
    targets: {a: "tcp://127.0.0.1:5432"}
    faults:
      f: {kind: error, sqlstate: '40001'}
"""
    assert problems(tmp_path, text) == [
        "devamb.yaml:6:16: services.db.on_switch: 'later' is not one of drain, close, keep",
        "devamb.yaml:9:34: services.db.faults.a.sqlstate: 4001 is not a SQLSTATE: five digits "
        "or capital letters, quoted (e.g. '40001')",
        "devamb.yaml:10:10: services.db.faults.b: missing required key 'sqlstate' "
        "(e.g. sqlstate: '40001')",
        "devamb.yaml:11:40: services.db.faults.c.match: 'match' on a postgres service picks "
        "commands, and 'bandwidth' acts on connections: use latency, reset or error",
        "devamb.yaml:12:45: services.db.faults.d.match.path: unknown key 'path'; expected one "
        "of sql",
        "devamb.yaml:13:43: services.db.faults.e.reply: 'reply' is not for postgres services",
        "devamb.yaml:17:16: services.raw.on_switch: 'drain' needs a protocol devamb reads "
        "(postgres or redis): a tcp relay has no safe point; use close or keep",
        "devamb.yaml:18:5: services.raw.redact_params: 'redact_params' applies to postgres "
        "services",
        "devamb.yaml:21:17: services.raw.faults.f.kind: 'error' faults apply to postgres and "
        "redis services only",
        "devamb.yaml:21:24: services.raw.faults.f.sqlstate: 'sqlstate' is not for tcp services",
    ]
