"""on_switch for a redis service: pooled connections move to the new target between replies;
a MULTI or a blocking command in flight is never cut; a subscriber is closed at once and
resubscribes on the new target."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
import redis.asyncio

from devamb.engine.core import Engine
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import Client, RedisServer, redis_servers
from tests.wire.test_redis_service import port_of, records

PROFILE = """
version: 1
services:
  cache:
    listen: 0
    protocol: redis
    target: a
    targets:
      a: tcp://127.0.0.1:{a}
      b: tcp://127.0.0.1:{b}
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_servers(tmp_path_factory.mktemp("redis-switch"), 2) as servers:
        yield servers


def connections(engine: Engine, target: str) -> dict[str, int]:
    status = engine.services["cache"].status()
    return next(t for t in status["targets"] if t["name"] == target)["connections"]


async def port_seen(r: redis.asyncio.Redis) -> int:
    return int((await r.config_get("port"))["port"])


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(400):
        if await check() if asyncio.iscoroutinefunction(check) else check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_drain_moves_pool_subscriber_and_waits_for_multi_and_blpop(
    make_engine: EngineFactory, pair: list[RedisServer]
) -> None:
    a, b = pair
    engine = await make_engine(PROFILE.format(a=a.port, b=b.port))
    port = port_of(engine)
    pool = redis.asyncio.Redis(port=port)  # redis-py retries a command on a closed connection
    assert {await port_seen(pool) for _ in range(5)} == {a.port}
    sub = redis.asyncio.Redis(port=port)
    pubsub = sub.pubsub()
    await pubsub.subscribe("news")
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
    in_multi = await Client.open(port)
    assert await in_multi.pipeline(("MULTI",), ("SET", "tx", "1")) == ["OK", "QUEUED"]
    blocked = await Client.open(port)
    await blocked.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$4\r\njobs\r\n$2\r\n10\r\n")
    await until(lambda: connections(engine, "a")["open"] == 4, "four connections on a")
    direct_a = await Client.open(a.port)

    async def blocking() -> bool:  # the BLPOP reached a (not only devamb's socket)
        listed = await direct_a.call("CLIENT", "LIST")
        return b"cmd=blpop" in listed  # type: ignore[operator]

    await until(blocking, "BLPOP on a")

    await engine.switch("cache", "b")  # the default for redis: drain
    # the idle pool connection and the subscriber close at once; MULTI and BLPOP wait
    await until(lambda: connections(engine, "a") == {"open": 2, "draining": 2}, "drain")
    assert await in_multi.call("EXEC") == ["OK"]  # ran on a, whole
    assert await direct_a.call("GET", "tx") == b"1"
    assert await asyncio.wait_for(in_multi.reader.read(), 10) == b""  # then closed
    assert await direct_a.call("LPUSH", "jobs", "j1") == 1
    assert await blocked.replies_(1) == [[b"jobs", b"j1"]]
    assert await asyncio.wait_for(blocked.reader.read(), 10) == b""
    await until(lambda: connections(engine, "a") == {"open": 0, "draining": 0}, "a empty")

    assert {await port_seen(pool) for _ in range(5)} == {b.port}
    # The subscriber's connection was closed: redis-py reconnects and resubscribes, on b.
    direct_b = await Client.open(b.port)

    async def resubscribed() -> bool:
        with contextlib.suppress(ConnectionError, redis.ConnectionError):
            await pubsub.get_message(timeout=0.1)
        return await direct_b.call("PUBSUB", "NUMSUB", "news") == [b"news", 1]

    await until(resubscribed, "the subscriber on b")
    assert await direct_b.call("PUBLISH", "news", "hi") == 1
    for _ in range(5):
        message = await pubsub.get_message(timeout=2)
        if message is not None and message["type"] == "message":
            break
    assert message is not None and message["data"] == b"hi"
    found = await records(engine, lambda f: True)
    drained = [e.notes.get("drain") for e in engine.store.all() if e.notes.get("drain")]
    assert drained.count("closed at a safe point") >= 4 and found
    await pubsub.aclose()
    await sub.aclose()
    await pool.aclose()
