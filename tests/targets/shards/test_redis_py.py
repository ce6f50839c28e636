"""redis-py 8 through a sharded Redis target, as an app uses it: default settings (HELLO 3,
CLIENT SETINFO), RESP2, pipelines, transactions, a password; real redis-server shards."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import redis
import redis.asyncio

from devamb.cluster.hashring import HashRing
from devamb.targets.shards import encoder
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import (
    REDIS_SERVER,
    Client,
    RedisServer,
    RespError,
    details,
    flush,
    port_of,
    profile,
    redis_servers,
)


def apart(servers: list[RedisServer]) -> tuple[str, str]:
    """Two keys on different shards."""
    ring = HashRing([s.name for s in servers])
    other = next(f"k{i}" for i in range(100) if ring.node_for(f"k{i}") != ring.node_for("k0"))
    return "k0", other


def use_redis_py(port: int, servers: list[RedisServer], **options: object) -> dict[str, object]:
    """A run of what apps do with redis-py (sync, as most apps use it); the results by name."""
    r = redis.Redis(port=port, **options)  # type: ignore[arg-type]
    out: dict[str, object] = {"proto": r.connection_pool.get_connection().get_protocol()}
    assert r.ping() is True
    assert r.set("user:1", "ann") is True and r.get("user:1") == b"ann"
    r.hset("h:1", mapping={"a": "1", "b": "2"})
    out["hgetall"] = r.hgetall("h:1")
    r.sadd("s:1", "x", "y")
    out["smembers"] = r.smembers("s:1")
    r.zadd("z:1", {"m": 1.5, "n": 2})
    out["zrange"] = r.zrange("z:1", 0, -1, withscores=True)
    out["zscore"] = r.zscore("z:1", "m")
    out["incrbyfloat"] = r.incrbyfloat("f:1", 0.5)
    out["mget"] = r.mget([f"m{i}" for i in range(10)])
    r.mset({f"m{i}": i for i in range(10)})
    out["mget2"] = r.mget([f"m{i}" for i in range(10)])
    out["missing"] = r.get("nothing")
    out["select"] = r.execute_command("SELECT", 0)
    out["setname"] = r.client_setname("app")
    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.incr(f"n{i % 7}")
    pipe.hgetall("h:1")
    out["pipeline"] = pipe.execute()
    tx = r.pipeline()  # transaction=True: MULTI ... EXEC
    tx.set("{order:7}:state", "paid").incr("{order:7}:version").hgetall("{order:7}:h")
    out["transaction"] = tx.execute()
    one, two = apart(servers)
    tx = r.pipeline()
    tx.set(one, 1).set(two, 2)
    try:
        tx.execute()
    except redis.ResponseError as exc:
        out["cross_shard"] = str(exc)
    out["after"] = r.get("user:1")
    r.close()
    return out


@pytest.mark.parametrize("protocol", [None, 2, 3])
async def test_redis_py_works_with_its_defaults_and_either_protocol(
    make_engine: EngineFactory, shards: list[RedisServer], protocol: int | None
) -> None:
    await flush(shards)
    engine = await make_engine(profile(shards))
    options = {} if protocol is None else {"protocol": protocol}
    out = await asyncio.to_thread(use_redis_py, port_of(engine), shards, **options)
    assert out["proto"] == (protocol or 3)
    assert out["hgetall"] == {b"a": b"1", b"b": b"2"}
    assert out["smembers"] == {b"x", b"y"}
    assert [tuple(pair) for pair in out["zrange"]] == [(b"m", 1.5), (b"n", 2.0)]  # type: ignore[attr-defined]
    assert out["zscore"] == 1.5 and out["incrbyfloat"] == 0.5
    assert out["mget"] == [None] * 10 and out["mget2"] == [str(i).encode() for i in range(10)]
    assert out["missing"] is None and out["select"] in (b"OK", "OK", True)
    assert out["setname"] is True
    counts = [i // 7 + 1 for i in range(50)]
    assert out["pipeline"] == [*counts, {b"a": b"1", b"b": b"2"}]
    assert out["transaction"] == [True, 1, {}]
    assert "a transaction runs on one shard" in str(out["cross_shard"])
    assert out["after"] == b"ann"
    # A RESP3 client's commands go over RESP3 connections to the shards, a RESP2 one's do not.
    resp3 = [s.get("resp3_connected") for s in details(engine)["shards"]]
    assert resp3 == ([None] * 3 if protocol == 2 else [True] * 3)


async def test_redis_py_asyncio_client_and_password(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    with redis_servers(tmp_path, 2) as plain:
        locked = [RedisServer(tmp_path, None, "--requirepass", "s3cret").start() for _ in plain]
        try:
            engine = await make_engine(profile(locked, "auth: s3cret"))
            port = port_of(engine)
            r = redis.asyncio.Redis(port=port, password="s3cret")  # HELLO 3 AUTH default s3cret
            assert await r.set("a", 1) is True and await r.get("a") == b"1"
            async with r.pipeline() as tx:
                tx.incr("{t}:x").incr("{t}:x")
                assert await tx.execute() == [1, 2]
            await r.aclose()
            wrong = redis.asyncio.Redis(port=port, password="nope")
            with pytest.raises(redis.AuthenticationError):
                await wrong.ping()
            await wrong.aclose()
            assert "s3cret" not in str(engine.services["cache"].status())
            assert not any(s.get("auth_error") for s in details(engine)["shards"])
        finally:
            for server in locked:
                server.kill()


async def test_hello_and_transactions_answer_as_redis_server_does(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    hello2 = await client.call("HELLO")
    assert isinstance(hello2, list) and hello2[:6:2] == [b"server", b"version", b"proto"]
    assert hello2[5] == 2
    no = await client.call("HELLO", 4)
    assert isinstance(no, RespError) and str(no).startswith("NOPROTO")
    bad = await client.call("HELLO", 3, "FOO")
    assert isinstance(bad, RespError) and "Syntax error in HELLO option 'FOO'" in str(bad)
    one, two = apart(shards)
    replies = await client.pipeline(
        ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("SET", one, 1), ("PING",),
        ("INCR", one), ("EXEC",),
        ("MULTI",), ("SET", one, 2), ("DISCARD",), ("GET", one),
        ("MULTI",), ("EXEC",),
        ("MULTI",), ("SET", one, 3), ("SET", two, 3), ("EXEC",), ("GET", one),
        ("MULTI",), ("NOSUCH",), ("EXEC",),
        ("MULTI",), ("KEYS", "*"), ("INCR", one), ("EXEC",),
    )
    texts = [str(r) if isinstance(r, RespError) else r for r in replies]
    assert texts[:8] == ["ERR EXEC without MULTI", "ERR DISCARD without MULTI", "OK",
                         "ERR MULTI calls can not be nested", "QUEUED", "QUEUED", "QUEUED",
                         ["OK", "PONG", 2]]
    assert texts[8:12] == ["OK", "QUEUED", "OK", b"2"]
    assert texts[12:14] == ["OK", []]
    assert texts[14:16] == ["OK", "QUEUED"] and "a transaction runs on one shard" in texts[16]
    assert texts[17].startswith("EXECABORT") and texts[18] == b"2"  # nothing of it ran
    assert texts[19] == "OK" and texts[20].startswith("ERR devamb: unknown command")
    assert texts[21].startswith("EXECABORT")
    assert "'KEYS' is not supported" in texts[23] and texts[24] == "QUEUED"
    assert texts[25].startswith("EXECABORT")
    # HELLO 3: the shards' own RESP3 replies (a map for HGETALL, a null), not re-encoded RESP2.
    await client.send_raw(encoder.command([b"HELLO", b"3", b"SETNAME", b"raw"]) + b"".join(
        encoder.command(c) for c in ([b"HSET", b"h", b"f", b"v"], [b"HGETALL", b"h"],
                                     [b"GET", b"nothing"], [b"MULTI"], [b"HGETALL", b"h"],
                                     [b"EXEC"])
    ))
    while len(client.ready) < 7:
        data = await asyncio.wait_for(client.reader.read(4096), 10)
        client.ready.extend(client.replies.feed(data))
    hello3, hset, hgetall, nothing, multi, queued, exec_ = (bytes(r) for r in client.ready)
    assert hello3.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n")
    version = subprocess.run([REDIS_SERVER or "", "--version"], capture_output=True).stdout
    assert b"$5\r\nproto\r\n:3\r\n" in hello3  # and the shards' own version:
    v = version.split(b"v=")[1].split()[0]
    assert b"\r\n$7\r\nversion\r\n$%d\r\n%s\r\n" % (len(v), v) in hello3
    assert (hset, hgetall, nothing) == (b":1\r\n", b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n", b"_\r\n")
    assert (multi, queued) == (b"+OK\r\n", b"+QUEUED\r\n")
    assert exec_ == b"*1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
