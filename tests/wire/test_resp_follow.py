"""The Redis follower beside a relay, with a real redis-server and real clients (redis-py,
redis-cli, raw RESP): commands matched to replies, state followed, faults answered in order."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio

from devamb.targets.shards import encoder
from devamb.wire.follower import FORWARD, Action, Answer, Close, Command, Delay
from tests.targets.shards.real_redis import Client, RedisServer, RespError
from tests.wire.resp_relay import FollowRelay


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    folder = tmp_path_factory.mktemp("follow")
    server = RedisServer(folder, None, "--enable-debug-command", "yes").start()
    yield server
    server.kill()


@pytest.fixture
async def relay(server: RedisServer) -> AsyncIterator[FollowRelay]:
    relay = await FollowRelay(server.port).start()
    yield relay
    await relay.close()


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def notes(relay: FollowRelay, index: int = -1) -> list[dict]:  # type: ignore[type-arg]
    return [r.notes["redis"] for r in relay.records(index)]


async def test_redis_py_resp3_commands_pipeline_and_transaction(relay: FollowRelay) -> None:
    r = redis.asyncio.Redis(port=relay.port, db=2)  # HELLO 3, CLIENT SETINFO, SELECT 2
    await r.flushdb()
    assert await r.set("user:42", "x" * 1000) is True
    assert await r.get("user:42") == b"x" * 1000
    async with r.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.incr(f"n:{i % 3}")
        assert len(await pipe.execute()) == 100
    async with r.pipeline() as tx:
        tx.set("{o}:a", 1).incr("{o}:a")
        assert await tx.execute() == [True, 2]
    assert await r.hgetall("nothing") == {}
    with pytest.raises(redis.ResponseError):
        await r.execute_command("INCR", "user:42")
    await r.aclose()
    await until(lambda: relay.followers and not relay.followers[-1][0].pending, "replies")
    records = relay.records()
    got = notes(relay)
    names = [n["command"] for n in got]
    assert names[0] == "HELLO" and got[0]["reply"]["type"] == "map"
    assert "CLIENT SETINFO" in names and "SELECT" in names
    set_ = next(n for n in got if n["command"] == "SET")
    assert set_["keys"] == ["user:42"] and set_["sizes"] == [3, 7, 1000] and set_["argc"] == 3
    assert set_["db"] == 2 and set_["protocol"] == 3 and set_["reply"]["type"] == "status"
    get = next(n for n in got if n["command"] == "GET")
    assert get["reply"] == {"type": "bulk", "size": 1000, "bytes": 1009}
    assert names.count("INCRBY") == 101 and names.count("INCR") == 1  # (redis-py's incr)
    multi = names.index("MULTI")
    assert names[multi : multi + 4] == ["MULTI", "SET", "INCRBY", "EXEC"]
    assert got[multi + 1]["queued"] and got[multi + 1]["reply"]["text"] == "QUEUED"
    assert got[multi + 3]["reply"] == {"type": "array", "length": 2, "bytes": 13}
    assert got[-2]["reply"]["type"] == "map" and got[-2]["reply"]["length"] == 0
    assert records[-1].error and "not an integer" in records[-1].error
    assert records[1].method == "CLIENT" and records[2].path.startswith("CLIENT SETINFO")
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in records)
    assert {n["connection"] for n in got} == {relay.followers[-1][1].conn.id}
    assert relay.followers[-1][0].opaque is None


async def test_passwords_are_redacted(tmp_path: Path) -> None:
    locked = RedisServer(tmp_path, None, "--requirepass", "s3cret").start()
    relay = await FollowRelay(locked.port).start()
    try:
        r = redis.asyncio.Redis(port=relay.port, password="s3cret")  # HELLO 3 AUTH default ...
        assert await r.ping() is True
        await r.aclose()
        r2 = redis.asyncio.Redis(port=relay.port, password="s3cret", protocol=2)  # AUTH s3cret
        assert await r2.ping() is True
        await r2.execute_command("CONFIG", "SET", "requirepass", "s3cret")
        await r2.aclose()
        await until(lambda: len(relay.followers) == 2 and not relay.followers[1][0].pending,
                    "replies")
        shown = json.dumps([notes(relay, 0), notes(relay, 1)]) + "".join(
            f"{r.path}{bytes(r.request_body.data)!r}" for i in (0, 1) for r in relay.records(i))
        assert "s3cret" not in shown and shown.count("<redacted>") >= 3
        hello = notes(relay, 0)[0]
        assert hello["args"] == ["HELLO", "3", "AUTH", "default", "<redacted>"]
        assert notes(relay, 1)[0]["args"] == ["AUTH", "<redacted>"]
    finally:
        await relay.close()
        locked.kill()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_pubsub_messages_are_pushes_on_the_subscriber(
    relay: FollowRelay, protocol: int
) -> None:
    sub = redis.asyncio.Redis(port=relay.port, protocol=protocol)
    pubsub = sub.pubsub()
    await pubsub.subscribe("news", "sport")
    await pubsub.psubscribe("n*")
    subscriber, _ = relay.followers[-1]
    await until(lambda: subscriber.subscribed == 3, "subscriptions")
    assert subscriber.safe_point()  # a subscriber is closed at once
    publisher = redis.asyncio.Redis(port=relay.port, protocol=protocol)
    assert await publisher.publish("news", "hello") == 2  # channel and pattern
    for _ in range(4):  # the confirmations, then both messages
        await pubsub.get_message(timeout=5)
    message = await pubsub.get_message(timeout=5)
    assert message is not None
    await pubsub.unsubscribe()
    await until(lambda: subscriber.subscribed == 1, "unsubscribed")
    records = relay.records(0 if relay.followers[0][0] is subscriber else -2)
    pushes = [r.notes["redis"] for r in records if r.method == "PUSH"]
    assert sorted(p["push"] for p in pushes) == ["message", "pmessage"]
    assert {p["channel"] for p in pushes} == {"news", "n*"}
    commands = [r.notes["redis"] for r in records if r.method != "PUSH"]
    subscribe = next(c for c in commands if c["command"] == "SUBSCRIBE")
    assert subscribe["confirmations"] == 2 and subscribe["keys"] == []
    unsubscribe = next(c for c in commands if c["command"] == "UNSUBSCRIBE")
    assert unsubscribe["confirmations"] == 2
    await pubsub.aclose()
    await sub.aclose()
    await publisher.aclose()


async def test_safe_points_multi_watch_and_blocking(
    relay: FollowRelay, server: RedisServer
) -> None:
    client = await Client.open(relay.port)
    assert await client.call("PING") == "PONG"
    follower, _ = relay.followers[-1]
    assert follower.safe_point()
    assert await client.call("MULTI") == "OK"
    assert not follower.safe_point()
    assert await client.call("EXEC") == []
    assert await client.call("WATCH", "w") == "OK"
    assert not follower.safe_point()
    assert await client.call("UNWATCH") == "OK"
    assert follower.safe_point()
    await client.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nqueue\r\n$1\r\n5\r\n")
    await until(lambda: follower.pending, "BLPOP sent")
    assert not follower.safe_point()
    pusher = await Client.open(server.port)
    assert await pusher.call("LPUSH", "queue", "job") == 1
    assert await client.replies_(1) == [[b"queue", b"job"]]
    await until(follower.safe_point, "BLPOP answered")
    blpop = notes(relay)[-1]
    assert blpop["blocking"] and blpop["keys"] == ["queue"] and blpop["reply"]["length"] == 2
    await client.close()
    await pusher.close()


async def test_redis_cli_inline_and_select(relay: FollowRelay) -> None:
    cli = shutil.which("redis-cli")
    assert cli is not None
    proc = await asyncio.create_subprocess_exec(
        cli, "-p", str(relay.port), "-n", "3", "SET", "cli:key", "v",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b"OK"
    await until(lambda: relay.followers and relay.records(), "records")
    await until(lambda: not relay.followers[-1][0].pending, "replies")
    got = notes(relay)
    assert [n["command"] for n in got][-2:] == ["SELECT", "SET"] and got[-1]["db"] == 3
    client = await Client.open(relay.port)
    await client.send_raw(b"SET inline 1\r\nGET inline\r\n")
    assert await client.replies_(2) == ["OK", b"1"]
    await until(lambda: len(relay.records()) == 2, "inline records")
    assert notes(relay)[0]["inline"] and notes(relay)[1]["keys"] == ["inline"]


@dataclass
class Faults:
    """Decides like the relay's fault chain would: by command and key."""

    answers: dict[str, str]
    decided: list[str]

    def __call__(self, command: Command) -> Action:
        self.decided.append(command.label)
        for key, reply in self.answers.items():
            name, _, pattern = key.partition(" ")
            if command.fields["command"] == name and command.fields.get("key", "").startswith(
                    pattern):
                if reply == "close":
                    return Close()
                if reply == "delay":
                    return Delay(0.05)
                return Answer(type("P", (), {"reply": reply})(), "f")
        return FORWARD


async def test_answers_keep_the_pipelines_order(server: RedisServer) -> None:
    faults = Faults({"GET session:": "-READONLY You can't write against a read only replica.",
                     "INCR slow": "delay", "SET moved": "-MOVED 3999 127.0.0.1:6381"}, [])
    relay = await FollowRelay(server.port, faults).start()
    try:
        direct = await Client.open(server.port)
        await direct.call("CONFIG", "RESETSTAT")
        client = await Client.open(relay.port)
        # DEBUG SLEEP holds the server's replies: the injected answer must wait behind them.
        replies = await client.pipeline(
            ("SET", "a", 1), ("DEBUG", "SLEEP", "0.2"), ("GET", "session:1"), ("GET", "a"),
            ("INCR", "slow"), ("GET", "session:2"), ("SET", "moved", 1), ("INCR", "a"),
        )
        texts = [str(r) if isinstance(r, RespError) else r for r in replies]
        assert texts == ["OK", "OK", "READONLY You can't write against a read only replica.",
                         b"1", 1, "READONLY You can't write against a read only replica.",
                         "MOVED 3999 127.0.0.1:6381", 2]
        stats = (await direct.call("INFO", "commandstats")).decode()  # type: ignore[union-attr]
        assert "cmdstat_get:calls=1," in stats  # the server never saw the answered GETs
        assert "cmdstat_set:calls=1," in stats
        # Commands too large to hold whole are decided on their start: a 300 KB SET answered
        # (none of it reaches the server), one delayed, in a pipeline, arriving in pieces.
        faults.answers["SET big:"] = "-OOM command not allowed when used memory > 'maxmemory'."
        faults.answers["SET slow"] = "delay"
        big = b"v" * 300_000
        data = b"".join(encoder.command(c) for c in (
            [b"SET", b"big:1", big], [b"GET", b"a"], [b"SET", b"slow", big], [b"STRLEN", b"slow"],
        ))
        for i in range(0, len(data), 50_000):
            await client.send_raw(data[i : i + 50_000])
        texts = [str(r) if isinstance(r, RespError) else r for r in await client.replies_(4)]
        assert texts == ["OOM command not allowed when used memory > 'maxmemory'.", b"2", "OK",
                         300_000]
        stats = (await direct.call("INFO", "commandstats")).decode()  # type: ignore[union-attr]
        assert "cmdstat_set:calls=2," in stats and await direct.call("EXISTS", "big:1") == 0
        # redis-py: a pipeline with an injected error in the middle.
        r = redis.asyncio.Redis(port=relay.port)
        async with r.pipeline(transaction=False) as pipe:
            pipe.set("x", 1).get("session:9").get("x")
            out = await pipe.execute(raise_on_error=False)
        assert out[0] is True and isinstance(out[1], redis.ReadOnlyError) and out[2] == b"1"
        await r.aclose()
        injected = [r for i in range(len(relay.followers)) for r in relay.records(i)
                    if r.notes["redis"].get("injected")]
        assert len(injected) == 5 and all(r.error.endswith("(injected)") for r in injected)
        assert "GET session:1" in faults.decided
        await direct.close()
    finally:
        await relay.close()


async def test_a_close_fault_and_bad_input(server: RedisServer) -> None:
    relay = await FollowRelay(server.port, Faults({"GET boom": "close"}, [])).start()
    try:
        client = await Client.open(relay.port)
        with pytest.raises(ConnectionError):
            await client.pipeline(("SET", "k", 1), ("GET", "boom"))
        # Malformed RESP: relayed as it came, the server answers as it would without devamb.
        client = await Client.open(relay.port)
        await client.send_raw(b"PING\r\n*1\r\n$x\r\n")
        pong, error = await client.replies_(2)
        assert pong == "PONG" and isinstance(error, RespError) and "Protocol error" in str(error)
        follower, _ = relay.followers[-1]
        assert follower.opaque is not None and "invalid length" in follower.opaque
        # A huge length prefix: decided on its start, passed on as it comes; the server refuses
        # it as it would without devamb; the follower holds nothing of it.
        client = await Client.open(relay.port)
        await client.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483647\r\n" + b"x" * 100_000)
        (error,) = await client.replies_(1)
        assert isinstance(error, RespError) and "invalid bulk length" in str(error)
        follower, sink = relay.followers[-1]
        assert not follower.gbuf and len(follower.client._kept) <= 256
        (record,) = sink.records
        assert record.method == "SET" and "invalid bulk length" in (record.error or "")
        # The same for a command a fault answers: the server never sees any of it.
        client = await Client.open(relay.port)
        await client.send_raw(b"*3\r\n$3\r\nGET\r\n$4\r\nboom\r\n$200000\r\n" + b"x" * 100_000)
        with pytest.raises(ConnectionError):
            await client.replies_(1)
    finally:
        await relay.close()


async def test_resp3_pushes_are_not_replies(relay: FollowRelay, server: RedisServer) -> None:
    """Client-side caching (RESP3): invalidation pushes arrive between replies; the follower
    records them as pushes and keeps matching replies to commands."""
    client = await Client.open(relay.port)
    await client.send_raw(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
    while not client.ready:
        client.ready.extend(client.replies.feed(await client.reader.read(65536)))
    client.ready.clear()
    await client.send_raw(b"*3\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\non\r\n"
                          b"*2\r\n$3\r\nGET\r\n$7\r\ncached1\r\n")
    while len(client.ready) < 2:
        client.ready.extend(client.replies.feed(await client.reader.read(65536)))
    writer = await Client.open(server.port)
    assert await writer.call("SET", "cached1", "v") == "OK"
    follower, sink = relay.followers[0]
    await until(lambda: any(r.method == "PUSH" for r in sink.records), "the invalidation push")
    await client.send_raw(b"*1\r\n$4\r\nPING\r\n")
    await until(lambda: any(r.method == "PING" for r in sink.records), "PING's reply")
    push = next(r for r in sink.records if r.method == "PUSH")
    assert push.notes["redis"]["push"] == "invalidate" and follower.opaque is None
    ping = next(r for r in sink.records if r.method == "PING")
    assert ping.notes["redis"]["reply"]["text"] == "PONG" and ping.notes["redis"]["protocol"] == 3
    await client.close()
    await writer.close()
