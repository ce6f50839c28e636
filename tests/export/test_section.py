"""The profile's `export:` section is checked like every other key (by `devamb check` too)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from devamb.engine.assembly import load_profile
from tests.conftest import problems

BASE = """\
version: 1
services:
  payments:
    listen: 9101
    targets: {local: "http://127.0.0.1:8001", staging: "https://pay.example.invalid"}
    target: local
"""


def test_a_valid_section(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(BASE + textwrap.dedent("""\
        export:
          targets: {payments: staging}
          hosts: {"127.0.0.1:8001": "payments.dev.svc.cluster.local:80", "[::1]:81": "x:1"}
        """))
    export = load_profile(path, environ={}).export
    assert export.targets == {"payments": "staging"}
    assert export.hosts == {"127.0.0.1:8001": "payments.dev.svc.cluster.local:80",
                            "[::1]:81": "x:1"}


def test_every_problem_is_positioned(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE + textwrap.dedent("""\
        export:
          targets: {payments: nope, orders: local}
          hosts: {"127.0.0.1": "a:1", "b:2": "no port", "c:3": 4}
          extra: 1
        """)) == [
        "devamb.yaml:8:23: export.targets.payments: 'nope' is not a target of service "
        "'payments'; known: local, staging",
        "devamb.yaml:8:29: export.targets.orders: 'orders' is not a service of this profile; "
        "known: payments",
        "devamb.yaml:9:11: export.hosts.127.0.0.1: '127.0.0.1' is not HOST:PORT",
        "devamb.yaml:9:38: export.hosts.b:2: 'no port' is not HOST:PORT (e.g. "
        "payments.dev.svc:80)",
        "devamb.yaml:9:56: export.hosts.c:3: expected a string, got a number",
        "devamb.yaml:10:3: export.extra: unknown key 'extra'; expected one of targets, hosts",
    ]


def test_sections_of_the_wrong_shape(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE + "export: {targets: [payments], hosts: 1}\n") == [
        "devamb.yaml:7:19: export.targets: expected a mapping of service names to target "
        "names, got a list",
        "devamb.yaml:7:38: export.hosts: expected a mapping of HOST:PORT to HOST:PORT, got a "
        "number",
    ]
    assert problems(tmp_path, BASE + "export: staging\n") == [
        "devamb.yaml:7:9: export: expected a mapping, got a string"]
