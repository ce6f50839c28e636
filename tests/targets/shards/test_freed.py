"""A finished connection to the sharded target is freed by reference counting alone, as a
relayed one is (tests/service/test_tcp_cycles.py): plain and with a connection fault."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import EngineFactory
from tests.service.test_tcp_cycles import _alive
from tests.targets.shards.real_redis import Client, RedisServer, port_of, profile


@pytest.mark.parametrize("faults", ["", "faults: {lag: {kind: latency, delay: 1ms}}"])
async def test_a_finished_sharded_connection_needs_no_collection(
        make_engine: EngineFactory, shards: list[RedisServer], no_collector: None,
        faults: str) -> None:
    text = profile(shards).rstrip() + ("\n        " + faults if faults else "") + "\n"
    engine = await make_engine(text)
    service = engine.services["cache"]
    assert not _alive(service)
    for i in range(3):
        client = await Client.open(port_of(engine))
        assert await client.pipeline(("SET", f"k{i}", "v"), ("GET", f"k{i}")) == ["OK", b"v"]
        await client.close()
    for _ in range(200):
        if not service.connections and len(engine.store) >= 3:
            break
        await asyncio.sleep(0.01)
    assert not service.connections
    for _ in range(20):  # (the loop's last callbacks of the closed transports)
        await asyncio.sleep(0)
    assert _alive(service) == []
