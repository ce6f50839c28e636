"""protocol: redis against a real redis-server: redis-py (RESP3 by default, pipelines, MULTI,
pub/sub), redis-cli and raw RESP through devamb, each command an exchange; command-level faults
(error replies, latency, reset) by command and key; bad input relayed as it came."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from devamb.engine.core import Engine
from devamb.inspect.exchange import Exchange
from devamb.inspect.filter import compile_filter
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import Client, RedisServer, RespError

PROFILE = """
version: 1
services:
  cache:
    listen: 0
    protocol: redis
    target: a
    targets:
      a: tcp://127.0.0.1:{port}
{extra}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    folder = tmp_path_factory.mktemp("redis-service")
    server = RedisServer(folder, None, "--enable-debug-command", "yes").start()
    yield server
    server.kill()


async def start(make_engine: EngineFactory, server: RedisServer, extra: str = "") -> Engine:
    return await make_engine(PROFILE.format(port=server.port, extra=extra))


def port_of(engine: Engine) -> int:
    bound = engine.services["cache"].bound
    assert bound is not None
    return bound[1]


async def records(engine: Engine, want: Callable[[list[Exchange]], bool]) -> list[Exchange]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        found = [e for e in engine.store.all() if "redis" in e.notes]
        if want(found) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


def note(exchange: Exchange) -> dict[str, Any]:
    return exchange.notes["redis"]


def commands(found: list[Exchange], name: str) -> list[Exchange]:
    return [e for e in found if note(e).get("command") == name]


async def test_redis_py_commands_are_exchanges(
    make_engine: EngineFactory, server: RedisServer
) -> None:
    engine = await start(make_engine, server)
    r = redis.asyncio.Redis(port=port_of(engine), db=1)  # HELLO 3, SETINFO, SELECT 1
    await r.flushdb()
    await r.set("user:42", "ann")
    assert await r.get("user:42") == b"ann"
    async with r.pipeline(transaction=False) as pipe:
        for i in range(20):
            pipe.get(f"k{i}")
        assert await pipe.execute() == [None] * 20
    async with r.pipeline() as tx:
        tx.incr("{o}:n").incr("{o}:n")
        assert await tx.execute() == [1, 2]
    await r.aclose()
    found = await records(engine, lambda f: len(commands(f, "EXEC")) == 1)
    get = next(e for e in commands(found, "GET") if note(e)["keys"] == ["user:42"])
    assert get.method == "GET" and get.path == "GET user:42" and get.error is None
    assert note(get)["reply"] == {"type": "bulk", "size": 3, "bytes": 9}
    assert note(get)["db"] == 1 and note(get)["protocol"] == 3
    assert get.duration_ms is not None and get.service == "cache"
    assert len(commands(found, "GET")) == 21
    hello = commands(found, "HELLO")[0]
    assert note(hello)["reply"]["type"] == "map"
    assert len({note(e)["connection"] for e in found}) == 1  # one connection's commands
    # The filter language: ~cmd picks commands by name.
    picked = [e for e in found if compile_filter("~cmd get")(e)]
    assert len(picked) == 21 and {e.method for e in picked} == {"GET"}
    assert len([e for e in found if compile_filter('~cmd "CLIENT SETINFO"')(e)]) == 2
    assert [note(e)["command"] for e in found if compile_filter("~cmd EXEC & !~e")(e)] == ["EXEC"]


async def test_error_latency_and_reset_faults_by_command_and_key(
    make_engine: EngineFactory, server: RedisServer
) -> None:
    extra = """    faults:
      readonly: {kind: error, reply: "-READONLY You can't write against a read only replica.",
                 match: {command: SET, key: "session:*"}}
      slow: {kind: latency, delay: 300ms, match: {command: GET, key: "session:*"}}
      moved: {kind: error, reply: "-MOVED 3999 127.0.0.1:6381", match: {command: HGET}, times: 1}
      cut: {kind: reset, match: {command: DEL, key: "boom"}}
"""
    engine = await start(make_engine, server, extra)
    direct = await Client.open(server.port)
    assert await direct.call("SET", "session:1", "old") == "OK"
    client = await Client.open(port_of(engine))
    loop = asyncio.get_running_loop()
    began = loop.time()
    replies = await client.pipeline(
        ("DEBUG", "SLEEP", "0.1"), ("SET", "session:1", "new"), ("GET", "session:1"),
        ("SET", "other", 1), ("HGET", "h", "f"), ("HGET", "h", "f"),
    )
    texts = [str(r) if isinstance(r, RespError) else r for r in replies]
    assert texts == ["OK", "READONLY You can't write against a read only replica.", b"old",
                     "OK", "MOVED 3999 127.0.0.1:6381", None]
    assert loop.time() - began >= 0.3  # the GET waited its latency
    assert await direct.call("GET", "session:1") == b"old"  # the SET never reached the server
    r = redis.Redis(port=port_of(engine))
    with pytest.raises(redis.ReadOnlyError):
        await asyncio.to_thread(r.set, "session:2", "x")
    assert await asyncio.to_thread(r.set, "plain", "x") is True  # the connection is in sync
    r.close()
    with pytest.raises(ConnectionError):
        await client.pipeline(("DEL", "boom"))
    found = await records(engine, lambda f: len(commands(f, "DEL")) == 1)
    injected = [e for e in found if note(e).get("injected")]
    assert sorted(e.faults[0] for e in injected) == ["moved", "readonly", "readonly"]
    slow = next(e for e in commands(found, "GET") if note(e)["keys"] == ["session:1"])
    assert slow.faults == ["slow"] and slow.duration_ms is not None and slow.duration_ms >= 300
    assert commands(found, "DEL")[0].faults == ["cut"]


async def test_pubsub_and_redis_cli(make_engine: EngineFactory, server: RedisServer) -> None:
    engine = await start(make_engine, server)
    port = port_of(engine)
    sub = redis.asyncio.Redis(port=port)
    pubsub = sub.pubsub()
    await pubsub.subscribe("news")
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
    cli = shutil.which("redis-cli")
    assert cli is not None
    proc = await asyncio.create_subprocess_exec(cli, "-p", str(port), "PUBLISH", "news", "hi",
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b"1"
    message = await pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"hi"
    found = await records(engine, lambda f: any(e.method == "PUSH" for e in f))
    push = next(e for e in found if e.method == "PUSH")
    assert note(push)["push"] == "message" and note(push)["channel"] == "news"
    assert note(push)["connection"] == note(commands(found, "SUBSCRIBE")[0])["connection"]
    publish = commands(found, "PUBLISH")[0]
    assert note(publish)["reply"]["value"] == "1"
    await pubsub.aclose()
    await sub.aclose()


async def test_bad_input_is_relayed_as_it_came(
    make_engine: EngineFactory, server: RedisServer
) -> None:
    engine = await start(make_engine, server)
    client = await Client.open(port_of(engine))
    await client.send_raw(b"PING\r\n*1\r\n$x\r\n")
    pong, error = await client.replies_(2)
    assert pong == "PONG" and isinstance(error, RespError) and "Protocol error" in str(error)
    # A 2 GiB length prefix: counted, not held; the server's refusal reaches the client. (A
    # client that sends more than the server reads before closing gets a reset, passed on by
    # the relay as a reset, as for protocol: tcp.)
    client = await Client.open(port_of(engine))
    await client.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483647\r\n" + b"x" * 1000)
    (error,) = await client.replies_(1)
    assert isinstance(error, RespError) and "invalid bulk length" in str(error)
    assert await asyncio.wait_for(client.reader.read(), 10) == b""  # closed, as redis does
    await client.close()

    def told(text: str) -> bool:
        return text in json.dumps([e.detail() for e in engine.store.all()], default=repr)

    await records(engine, lambda f: told("invalid length") and told("invalid bulk length"))
    assert told("invalid length")  # the opaque connection's record says why
    assert told("ERR Protocol error: invalid bulk length")  # the server's error, on the record
    found = await records(engine, lambda f: bool(commands(f, "PING")))
    ping = commands(found, "PING")[0]  # came before the bad bytes; its reply was not followed
    assert ping.error is not None and "invalid length" in ping.error
