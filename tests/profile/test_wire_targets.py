"""Target kinds that make no sense on a postgres or redis service are profile errors at
FILE:LINE:COL of the kind's key, naming the service, the target and why (they are not read
as a tcp service's targets: a shards target speaks RESP, a mock answers HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from tests.conftest import problems

PROFILE = """\
version: 1
services:
  {service}:
    listen: 0
    protocol: {protocol}
    target: a
    targets:
      a: tcp://127.0.0.1:1
      {target}: {entry}
"""
SHARDS = "{shards: ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:2'], key: redis}"
MOCK = "{mock: {routes: []}}"

REFUSED = [
    ("postgres", SHARDS, "shards targets serve grpc and http and http2 and redis and tcp "
     "services only (shards speak RESP (key: redis) or route HTTP requests by key, not "
     "PostgreSQL); this is a postgres service"),
    ("postgres", MOCK, "mock targets serve grpc and http and http2 services only (a mock "
     "answers HTTP requests and gRPC calls, not database clients); this is a postgres service"),
    ("redis", MOCK, "mock targets serve grpc and http and http2 services only (a mock answers "
     "HTTP requests and gRPC calls, not database clients); this is a redis service"),
    ("postgres", "{echo: true}", "echo targets serve grpc and http and http2 and redis and "
     "tcp services only (an echo sends the client's own messages back, which a PostgreSQL "
     "client cannot read as the server's); this is a postgres service"),
]


@pytest.mark.parametrize(("protocol", "entry", "why"), REFUSED,
                         ids=["postgres-shards", "postgres-mock", "redis-mock", "postgres-echo"])
def test_a_target_kind_a_database_service_cannot_use_is_refused_where_it_is_written(
    tmp_path: Path, protocol: str, entry: str, why: str
) -> None:
    text = PROFILE.format(service="orders_db", protocol=protocol, target="t1", entry=entry)
    kind = entry[1:entry.index(":")]
    column = len("      t1: {") + 1
    assert problems(tmp_path, text) == [
        f"devamb.yaml:9:{column}: services.orders_db.targets.t1.{kind}: {why}"]


def test_a_bare_echo_on_postgres_is_refused_at_the_word(tmp_path: Path) -> None:
    text = PROFILE.format(service="db", protocol="postgres", target="e", entry="echo")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("devamb.yaml:9:10: services.db.targets.e: echo targets serve ")
    assert problem.endswith("; this is a postgres service")


@pytest.mark.parametrize(("protocol", "entry"), [
    ("redis", SHARDS), ("redis", "echo"), ("postgres", "{split: {a: 1}}"),
    ("postgres", "{endpoints: ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:2']}"),
    ("redis", "{docker: {container: cache-dev, port: 6379}}"),
])
def test_the_kinds_that_relay_to_a_database_are_accepted(
    tmp_path: Path, protocol: str, entry: str
) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(PROFILE.format(service="db", protocol=protocol, target="t", entry=entry))
    spec = load_profile(path, environ={}).services["db"]
    assert spec.protocol == protocol and "t" in spec.targets
