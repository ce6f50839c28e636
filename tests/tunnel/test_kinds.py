"""Every kind that connects goes through the bastion: a redis-server behind a TCP relay and
behind sharded Redis targets (per-shard `via:`), a pool of HTTP endpoints, and an HTTP/2 (h2c)
upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory, listen_url
from tests.sshd import Sshd
from tests.targets.shards.real_redis import Client, RedisServer
from tests.targets.test_h2_kinds import _get
from tests.tunnel.conftest import bastion_yaml
from tests.upstreams import HttpUpstream
from tests.upstreams_h2 import H2Upstream


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    servers = (RedisServer(tmp_path).start(), RedisServer(tmp_path).start())
    yield servers
    for server in servers:
        server.kill()


async def test_redis_relayed_and_sharded_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory,
    redis_pair: tuple[RedisServer, RedisServer],
) -> None:
    one, two = redis_pair
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
        "  cache:\n    listen: 0\n    protocol: tcp\n    target: remote\n    targets:\n"
        f"      remote: {{url: 'tcp://localhost:{one.port}', via: jump}}\n"
        "  sharded:\n    listen: 0\n    protocol: tcp\n    target: ring\n    targets:\n"
        "      ring:\n        key: redis\n        shards:\n"
        f"          a: {{url: 'tcp://127.0.0.1:{one.port}', via: jump}}\n"
        f"          b: {{url: 'tcp://127.0.0.1:{two.port}', via: jump}}\n"
    )
    cache = await Client.open(engine.services["cache"].bound[1])  # type: ignore[index]
    assert await cache.pipeline(("SET", "direct", "yes"), ("GET", "direct")) == ["OK", b"yes"]
    sharded = await Client.open(engine.services["sharded"].bound[1])  # type: ignore[index]
    keys = [f"key:{i}" for i in range(50)]
    assert await sharded.pipeline(*(("SET", k, k.upper()) for k in keys)) == ["OK"] * 50
    assert await sharded.pipeline(*(("GET", k) for k in keys)) == [k.upper().encode() for k in keys]
    direct_two = await Client.open(two.port)  # both shards got keys, through the tunnel
    assert (await direct_two.pipeline(("DBSIZE",)))[0] > 0
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.connects == 1 and bastion.channels == 3


async def test_a_pool_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    upstream2: HttpUpstream,
) -> None:
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
        "  api:\n    listen: 0\n    target: pool\n    targets:\n"
        "      pool:\n        via: jump\n        health: {path: /up, interval: 1s}\n"
        f"        endpoints: ['{upstream.url}', 'http://localhost:{upstream2.port}']\n"
    )
    seen = set()
    async with aiohttp.ClientSession() as client:
        for _ in range(6):
            async with client.get(f"{listen_url(engine, 'api')}/who") as response:
                assert response.status == 200
                seen.add((await response.json())["upstream"])
    assert seen == {"up", "up2"}  # round robin over both, each reached through the tunnel
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.channels_total >= 2


async def test_http2_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory
) -> None:
    h2 = await H2Upstream("far").start()
    try:
        engine = await make_engine(
            "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
            "  h2:\n    listen: 0\n    protocol: http2\n    target: remote\n    targets:\n"
            f"      remote: {{url: 'http://127.0.0.1:{h2.port}', via: jump}}\n"
        )
        port = engine.services["h2"].bound[1]  # type: ignore[index]
        client = H2Client("127.0.0.1", port, 5.0)
        try:
            for _ in range(3):
                headers, _ = await _get(client, port, "remote", body=b"x" * 100_000)
                assert headers[":status"] == "200"
        finally:
            client.close()
        bastion = engine.ctx.tunnels.get("jump")
        assert bastion is not None and bastion.channels_total == 1  # one shared h2 connection
        assert h2.connections == 1
    finally:
        await h2.stop()
