"""The sharded Redis target under attack.

Issue 15, bug 15: a Redis shard that accepts connections but never replies (SIGSTOP: the
kernel still completes the handshake from its backlog) must be ejected after `eject_after`
failed commands. Each reconnect used to count as a success and reset the failure count, so the
shard stayed `failing` forever and every command for its keys timed out.

Weak spot: a large SET (and GET) through the target cost about three copies of the value in the
engine (a 300 MB SET peaked at 669 MB); an argument or a reply is now held once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from devamb.cluster.hashring import HashRing
from tests.conftest import EngineFactory
from tests.hardening.engine_process import EngineProcess, needs_proc
from tests.targets.shards.real_redis import (
    Client,
    RedisServer,
    RespError,
    details,
    port_of,
    profile,
)


@pytest.fixture
def two_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    servers = [RedisServer(tmp_path).start() for _ in range(2)]
    yield servers
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.kill()


@pytest.mark.timeout(60)
async def test_a_stopped_shard_is_ejected_after_its_failed_commands(
    make_engine: EngineFactory, two_redis: list[RedisServer]
) -> None:
    victim, survivor = two_redis
    text = profile(two_redis, "eject_after: 3\n            eject_for: 60s").replace(
        "timeout: 2s", "timeout: 1s"
    )
    engine = await make_engine(text)
    client = await Client.open(port_of(engine))
    ring = HashRing([s.name for s in two_redis])
    key = next(f"k{i}" for i in range(100) if ring.node_for(f"k{i}") == victim.name)
    assert await client.call("SET", key, 1) == "OK"  # the shared link to the victim is open

    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGSTOP)
    try:
        failures = 0
        for _ in range(6):  # each command for the stopped shard times out until it is ejected
            reply = await client.call("SET", key, 2)
            if reply == "OK":
                break
            assert isinstance(reply, RespError), reply
            assert f"shard {victim.name}" in str(reply) and "no reply within 1s" in str(reply)
            failures += 1
        state = {s["name"]: s for s in details(engine)["shards"]}
        assert state[victim.name]["state"] == "ejected", state[victim.name]
        assert failures == 3
        # Ejected: its keys rehash to the survivor, which answers at once.
        assert await client.call("SET", key, 3) == "OK"
        survivor_direct = await Client.open(survivor.port)
        assert await survivor_direct.call("GET", key) == b"3"
        await survivor_direct.close()
        assert state[survivor.name]["state"] == "up"
    finally:
        os.kill(victim.process.pid, signal.SIGCONT)
        await client.close()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@needs_proc
@pytest.mark.skipif(os.environ.get("DEVAMB_LOOP") == "asyncio",
                    reason="asyncio's transports copy what a socket does not take at once")
@pytest.mark.timeout(120)
async def test_a_large_value_is_held_once(
    two_redis: list[RedisServer], tmp_path: Path
) -> None:
    size = 128 * 1024 * 1024
    engine = await EngineProcess(tmp_path, profile(two_redis).replace("timeout: 2s",
                                                                     "timeout: 30s")).start()
    try:
        _, port = await engine.address("cache")
        before = _peak_rss(engine.pid)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        block = bytes(range(256)) * 4096  # 1 MiB
        writer.write(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        writer.write(b"\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 60) == b"+OK\r\n"
        assert await asyncio.wait_for(reader.readline(), 60) == b"$%d\r\n" % size
        value = await asyncio.wait_for(reader.readexactly(size + 2), 60)
        writer.close()
        expected = hashlib.sha256(block * (size // len(block)) + b"\r\n").hexdigest()
        assert hashlib.sha256(value).hexdigest() == expected
        del value
        grown = _peak_rss(engine.pid) - before
        # One copy of the value, plus buffers; it used to be about three.
        assert grown < 1.6 * size, f"the engine grew by {grown / size:.2f} x the value"
    finally:
        await engine.close()
