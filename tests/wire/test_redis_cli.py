"""A redis service through the real `devamb` command: a command-level fault added live
(`fault add --command --key --reply`), the commands in `devamb traffic`, filtered with ~cmd."""

from __future__ import annotations

import json
from pathlib import Path

import redis.asyncio

from tests.conftest import devamb
from tests.targets.shards.real_redis import redis_servers

PROFILE = """\
version: 1
services:
  cache:
    listen: 0
    protocol: redis
    targets:
      a: tcp://127.0.0.1:{a}
"""


async def test_fault_traffic_and_filter_from_the_cli(tmp_path: Path) -> None:
    with redis_servers(tmp_path, 1) as (server,):
        (tmp_path / "devamb.yaml").write_text(PROFILE.format(a=server.port))
        rc, _, err = await devamb("up", "--detach", cwd=tmp_path)
        assert rc == 0, err
        try:
            rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
            [cache] = [s for s in json.loads(out)["services"] if s["name"] == "cache"]
            port = int(cache["listen"].rsplit(":", 1)[1])
            rc, out, err = await devamb(
                "fault", "add", "cache", "error", "--reply=-READONLY not on a replica",
                "--command", "SET", "--key", "session:*", "--times", "1", cwd=tmp_path)
            assert rc == 0, err
            r = redis.asyncio.Redis(port=port)
            try:
                await r.set("session:1", "x")
                raise AssertionError("the fault should have answered")
            except redis.ReadOnlyError:
                pass
            assert await r.set("session:1", "y") is True  # times: 1, then forwarded
            assert await r.get("session:1") == b"y"
            await r.aclose()
            rc, out, _ = await devamb("traffic", "--filter", "~cmd SET", cwd=tmp_path)
            lines = [line for line in out.splitlines() if "SET session:1" in line]
            assert len(lines) == 2 and "READONLY" in lines[0] and " ok " in lines[1], out
            assert "GET session:1" not in out
        finally:
            await devamb("down", cwd=tmp_path)
