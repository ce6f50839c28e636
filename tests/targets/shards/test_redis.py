"""The sharded Redis target against real redis-server processes (Debian package redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devamb.cluster.hashring import HashRing
from devamb.targets.shards import encoder
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import (
    Client,
    RedisServer,
    RespError,
    details,
    flush,
    port_of,
    profile,
)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Servers a test may kill and restart (or start with options); killed after it."""
    made: list[RedisServer] = []
    yield made
    for server in made:
        server.kill()


async def test_each_key_lands_on_the_one_shard_the_ring_says(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    keys = [f"user:{i}" for i in range(300)]
    assert await client.pipeline(*[("SET", k, f"v{k}") for k in keys]) == ["OK"] * 300
    ring = HashRing([s.name for s in shards])
    for key in keys:
        found = [await c.call("EXISTS", key) for c in direct]
        assert sum(found) == 1, key  # type: ignore[arg-type]
        assert shards[found.index(1)].name == ring.node_for(key.encode())
    sizes = [await c.call("DBSIZE") for c in direct]
    assert sum(sizes) == 300 and all(s > 50 for s in sizes)  # type: ignore[operator]
    assert await client.pipeline(*[("GET", k) for k in keys]) == [f"v{k}".encode() for k in keys]
    shares = {s["name"]: s for s in details(engine)["shards"]}
    assert sum(s["requests"] for s in shares.values()) == 600
    assert {name: s["requests"] for name, s in shares.items()} == {
        shards[i].name: 2 * sizes[i] for i in range(3)  # type: ignore[operator]
    }


async def test_named_shards_hash_by_name(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards, named=True))
    client = await Client.open(port_of(engine))
    ring = HashRing(["s0", "s1", "s2"])
    for i in range(60):
        assert await client.call("SET", f"k{i}", i) == "OK"
        owner = int(ring.node_for(f"k{i}".encode())[1:])
        assert await direct[owner].call("GET", f"k{i}") == str(i).encode()
    assert [s["name"] for s in details(engine)["shards"]] == ["s0", "s1", "s2"]


async def test_pipeline_of_1000_mixed_commands_keeps_its_order(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    commands: list[tuple[object, ...]] = []
    expected: list[object] = []
    values: dict[str, int] = {}
    for i in range(1000):
        key = f"n{i % 37}"
        if i % 3 == 0:
            commands.append(("SET", key, i))
            values[key] = i
            expected.append("OK")
        elif i % 3 == 1:
            commands.append(("INCR", key))
            values[key] = values.get(key, 0) + 1
            expected.append(values[key])
        else:
            commands.append(("GET", key))
            expected.append(str(values[key]).encode() if key in values else None)
    assert await client.pipeline(*commands) == expected


async def test_replies_keep_the_clients_order_when_a_shard_is_slow(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    ring = HashRing([s.name for s in shards])
    keys = [f"k{i}" for i in range(30)]
    await client.pipeline(*[("SET", k, k) for k in keys])
    slow = shards[0].name
    assert await direct[0].call("CLIENT", "PAUSE", 300, "ALL") == "OK"
    started = time.monotonic()
    replies = await client.pipeline(*[("GET", k) for k in keys])
    assert replies == [k.encode() for k in keys]
    assert any(ring.node_for(k.encode()) == slow for k in keys)
    assert time.monotonic() - started >= 0.25


async def test_multi_key_commands_fan_out(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    pairs = [(f"m{i}", f"v{i}") for i in range(20)]
    assert await client.call("MSET", *[x for pair in pairs for x in pair]) == "OK"
    sizes = [await c.call("DBSIZE") for c in direct]
    assert sum(sizes) == 20 and sizes.count(0) == 0  # type: ignore[arg-type]
    keys = [k for k, _ in pairs]
    mixed = [keys[3], "missing", keys[0], keys[19], keys[3]]
    assert await client.call("MGET", *mixed) == [b"v3", None, b"v0", b"v19", b"v3"]
    assert await client.call("EXISTS", *keys, "missing", keys[0]) == 21
    assert await client.call("TOUCH", *keys[:5]) == 5
    assert await client.call("DBSIZE") == 20
    assert await client.call("DEL", *keys[:10], "missing") == 10
    assert await client.call("UNLINK", *keys[10:15]) == 5
    assert await client.call("MGET", *keys[:2], keys[19]) == [None, None, b"v19"]
    assert await client.call("DBSIZE") == 5
    assert await client.call("FLUSHDB") == "OK"
    assert await client.call("DBSIZE") == 0
    error = await client.call("MSET", "a", "1", "b")
    assert isinstance(error, RespError) and "wrong number of arguments" in str(error)
    # A fan-out keeps its place among other replies in a pipeline.
    replies = await client.pipeline(("SET", "x", 1), ("MGET", "x", "y", "z"), ("INCR", "x"))
    assert replies == ["OK", [b"1", None, None], 2]


async def test_hash_tags_keep_keys_together(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    for user in range(10):
        await client.pipeline(*[("SET", f"{{user{user}}}:{part}", part) for part in "abc"])
        holders = [await c.call("EXISTS", *[f"{{user{user}}}:{p}" for p in "abc"]) for c in direct]
        assert sorted(holders) == [0, 0, 3]  # type: ignore[type-var]
    ring = HashRing([s.name for s in shards])
    owner = ring.node_for(b"user1")
    assert await direct[[s.name for s in shards].index(owner)].call("GET", "{user1}:a") == b"a"
    # Commands whose keys must share a shard work when they do, and say so when they do not.
    assert await client.call("RENAME", "{user1}:a", "{user1}:z") == "OK"
    assert await client.call("SADD", "{user2}:x", "m") == 1
    assert await client.call("SUNIONSTORE", "{user2}:s", "{user2}:x") == 1
    apart = next(f"k{i}" for i in range(100) if ring.node_for(f"k{i}") != ring.node_for("k0"))
    await client.call("SET", "k0", 1)
    error = await client.call("RENAME", "k0", apart)
    assert isinstance(error, RespError)
    assert "keys live on different shards" in str(error) and "{user1}" in str(error)


async def test_unsupported_and_connection_commands(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    replies = await client.pipeline(
        ("KEYS", "*"), ("WATCH", "x"), ("BLPOP", "q", 0), ("NOSUCH", "x"), ("PING",), ("PING", "a"),
        ("ECHO", "e"), ("SELECT", 0), ("SELECT", 2), ("AUTH", "pw"), ("GET",), ("XREAD", "BLOCK",
        "0", "STREAMS", "s", "$"), ("COMMAND", "DOCS"), ("CLIENT", "SETNAME", "app"),
        ("CLIENT", "KILL", "x"), ("EVAL", "return 1", 0),
    )
    texts = [str(r) if isinstance(r, RespError) else r for r in replies]
    assert texts[0] == (
        "ERR devamb: 'KEYS' is not supported through a sharded target (keys live on several "
        "shards)"
    )
    assert "'WATCH' is not supported" in texts[1] and "MULTI/EXEC work" in texts[1]
    assert "'BLPOP' is not supported" in texts[2] and "blocking" in texts[2]
    assert texts[3].startswith("ERR devamb: unknown command 'NOSUCH'")
    assert texts[4:8] == ["PONG", b"a", b"e", "OK"]
    assert texts[8] == "ERR devamb: only database 0 is available through a sharded target"
    assert texts[9].startswith("ERR AUTH <password> called without any password configured")
    assert texts[10] == "ERR wrong number of arguments for 'get' command"
    assert "'XREAD BLOCK' is not supported" in texts[11]
    assert texts[12] == [] and texts[13] == "OK"
    assert "'CLIENT KILL' is not supported" in texts[14]
    assert "'EVAL without keys' is not supported" in texts[15]
    # Inline commands, as typed into telnet.
    await client.send_raw(b"SET inline 1\r\nGET inline\r\n")
    assert await client.replies_(2) == ["OK", b"1"]
    # QUIT answers after the replies before it, then closes.
    await client.send_raw(encoder.command([b"INCR", b"inline"]) + b"QUIT\r\nPING\r\n")
    assert await client.replies_(2) == [2, "OK"]
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_protocol_error_answers_and_closes(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    await client.send_raw(b"PING\r\n*1\r\n$x\r\n")
    pong, error = await client.replies_(2)
    assert pong == "PONG" and isinstance(error, RespError) and "Protocol error" in str(error)
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_auth_is_sent_to_every_shard_and_checked_for_clients(
    make_engine: EngineFactory, own_redis: list[RedisServer], tmp_path: Path
) -> None:
    own_redis.extend(RedisServer(tmp_path, None, "--requirepass", "s3cret").start()
                     for _ in range(2))
    engine = await make_engine(profile(own_redis, "auth: s3cret"))
    client = await Client.open(port_of(engine))
    assert await client.pipeline(*[("SET", f"k{i}", i) for i in range(20)]) == ["OK"] * 20
    assert await client.call("AUTH", "s3cret") == "OK"
    assert await client.call("AUTH", "default", "s3cret") == "OK"
    wrong = await client.call("AUTH", "nope")
    assert isinstance(wrong, RespError) and str(wrong).startswith("WRONGPASS")
    assert "s3cret" not in str(engine.services["cache"].status())


async def test_an_unreachable_shard_fails_only_its_keys(
    make_engine: EngineFactory, shards: list[RedisServer], tmp_path: Path
) -> None:
    await flush(shards)
    dead = RedisServer(tmp_path)  # never started: nothing listens on its port
    servers = [shards[0], dead]
    engine = await make_engine(profile(servers))
    client = await Client.open(port_of(engine))
    ring = HashRing([s.name for s in servers])
    keys = [f"k{i}" for i in range(20)]
    replies = await client.pipeline(*[("SET", k, 1) for k in keys])
    for key, reply in zip(keys, replies, strict=True):
        if ring.node_for(key) == dead.name:
            assert isinstance(reply, RespError)
            assert str(reply).startswith(
                f"ERR devamb: shard {dead.name} ({dead.url}) unreachable: "
            )
        else:
            assert reply == "OK"
    state = {s["name"]: s for s in details(engine)["shards"]}
    assert state[dead.name]["state"] == "failing" and state[dead.name]["errors"] > 0
    assert state[shards[0].name]["state"] == "up"
    assert engine.services["cache"].targets["sharded"].state == "degraded"


async def test_a_killed_shard_is_ejected_and_comes_back(
    make_engine: EngineFactory, own_redis: list[RedisServer], tmp_path: Path
) -> None:
    own_redis.extend(RedisServer(tmp_path).start() for _ in range(2))
    victim, survivor = own_redis
    engine = await make_engine(profile(own_redis, "eject_after: 2\n            eject_for: 1s"))
    client = await Client.open(port_of(engine))
    ring = HashRing([s.name for s in own_redis])
    keys = [f"k{i}" for i in range(40)]
    on_victim = [k for k in keys if ring.node_for(k) == victim.name]
    assert on_victim and await client.pipeline(*[("SET", k, 1) for k in keys]) == ["OK"] * 40

    victim.kill()
    failures = 0
    for _ in range(10):  # each command to the victim fails until it is ejected
        reply = await client.call("SET", on_victim[0], 2)
        if reply == "OK":
            break
        assert isinstance(reply, RespError) and "unreachable" in str(reply)
        failures += 1
    assert failures == 2
    state = {s["name"]: s for s in details(engine)["shards"]}
    assert state[victim.name]["state"] == "ejected" and state[victim.name]["returns_in_s"] <= 1
    # While ejected, every key rehashes to the survivor.
    assert await client.pipeline(*[("SET", k, 3) for k in keys]) == ["OK"] * 40
    survivor_direct = await Client.open(survivor.port)
    assert await survivor_direct.call("GET", on_victim[0]) == b"3"

    own_redis.append(RedisServer(tmp_path, victim.port).start())  # restarted; killed after
    await asyncio.sleep(1.1)
    assert await client.call("SET", on_victim[0], 4) == "OK"  # back on the ring: its own shard
    victim_direct = await Client.open(victim.port)
    assert await victim_direct.call("GET", on_victim[0]) == b"4"
    state = {s["name"]: s for s in details(engine)["shards"]}
    assert state[victim.name]["state"] == "up"
