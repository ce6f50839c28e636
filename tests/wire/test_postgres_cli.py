"""A postgres service through the real `devamb` command: traffic lines, a fault added live,
`switch --drain` with status showing the connection that waits for its safe point."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg

from tests.conftest import devamb
from tests.wire.pg import Cluster

PROFILE = """\
version: 1
services:
  db:
    listen: 0
    protocol: postgres
    target: a
    on_switch: keep
    targets:
      a: tcp://127.0.0.1:{a}
      b: tcp://127.0.0.1:{b}
  web:
    listen: 0
    targets: {{e: echo}}
"""


async def test_traffic_fault_and_drain_from_the_cli(tmp_path: Path, pg_clusters) -> None:
    a, b = pg_clusters
    (tmp_path / "devamb.yaml").write_text(PROFILE.format(a=a.port, b=b.port))
    rc, _, err = await devamb("up", "--detach", cwd=tmp_path)
    assert rc == 0, err
    try:
        rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
        [db] = [s for s in json.loads(out)["services"] if s["name"] == "db"]
        port = int(db["listen"].rsplit(":", 1)[1])
        rc, out, err = await devamb("fault", "add", "db", "error", "--sqlstate", "40001",
                                    "--sql", "select 99", "--times", "1", cwd=tmp_path)
        assert rc == 0, err
        conn = await psycopg.AsyncConnection.connect(Cluster.dsn_at(port), autocommit=True)
        try:
            try:
                await conn.execute("SELECT 99")
                raise AssertionError("the fault should have answered")
            except psycopg.errors.SerializationFailure:
                pass
            await conn.execute("SELECT 98")
            await conn.set_autocommit(False)
            await conn.execute("SELECT 1")  # a transaction is open on a
            rc, out, err = await devamb("switch", "db", "b", "--drain", cwd=tmp_path)
            assert rc == 0 and out.strip() == "db -> b", err
            rc, out, _ = await devamb("status", cwd=tmp_path)
            assert "db/a: 1 connection(s) still open, 1 waiting for a safe point" in out
            await conn.commit()  # the safe point: the drain closes it
            for _ in range(100):
                rc, out, _ = await devamb("status", cwd=tmp_path)
                if "db/a:" not in out:
                    break
                await asyncio.sleep(0.1)
            assert "db/a:" not in out
        finally:
            await conn.close()
        rc, out, _ = await devamb("traffic", cwd=tmp_path)
        lines = out.splitlines()
        assert any(" err " in line and "SELECT 99" in line and "40001" in line
                   for line in lines)
        assert any(" ok " in line and line.rstrip().endswith("SELECT 98") for line in lines)
        rc, _, err = await devamb("switch", "web", "e", "--drain", cwd=tmp_path)
        assert rc == 1 and "applies to tcp, postgres and redis services" in err
    finally:
        await devamb("down", cwd=tmp_path)
