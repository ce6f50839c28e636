"""Pipelined commands kept as one batch on the hot path: each still its own record, in order,
whichever way the server's replies are cut and whatever they are."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devamb.inspect.lazy import singles
from devamb.wire.follower import FollowerOptions
from devamb.wire.resp_follow import RedisFollower, _Batch
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import Client, RedisServer
from tests.wire.resp_relay import Sink

PROFILE = """
version: 1
services:
  cache:
    listen: 0
    protocol: redis
    targets:
      a: tcp://127.0.0.1:{port}
"""


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


COMMANDS = [(b"SET", b"a", b"1"), (b"GET", b"a"), (b"LRANGE", b"l", b"0", b"5"),
            (b"SELECT", b"1"), (b"GET", b"b"), (b"INCR", b"a")]


def test_a_pipeline_answered_in_pieces_is_recorded_command_by_command() -> None:
    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    assert follower.client_data(b"".join(_command(*c) for c in COMMANDS)) is None
    assert [type(p) for p in follower.pending] == [_Batch, type(follower.pending[1]), _Batch]
    # the server's replies cut inside the first batch, then an array read the general way
    assert follower.server_data(b"+OK\r\n$1\r\n1\r\n") is None
    assert [r.method for r in sink.records] == ["SET", "GET"]
    follower.server_data(b"*0\r\n+OK\r\n$-1\r\n-ERR value is not an integer\r\n")
    assert not follower.pending and follower.db == 1
    records = sink.records
    assert [r.method for r in records] == [c[0].decode() for c in COMMANDS]
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert len({r.id for r in records}) == len(COMMANDS)
    replies = [r.notes["redis"]["reply"] for r in records]
    assert [r["type"] for r in replies] == ["status", "bulk", "array", "status", "null", "error"]
    assert replies[1]["size"] == 1 and replies[2]["length"] == 0
    assert [r.error for r in records][-1] == "ERR value is not an integer"
    assert all(r.error is None for r in records[:-1])
    assert records[2].notes["redis"]["keys"] == ["l"]
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in records)


def test_a_batch_without_replies_ends_with_the_reason() -> None:
    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    follower.client_data(_command(b"GET", b"x") * 3)
    assert [type(p) for p in follower.pending] == [_Batch]
    follower.server_data(b"$-1\r\n")  # one answered: the batch's first command alone
    follower.ended("the connection closed")
    assert [r.error for r in sink.records] == [None, *["no reply: the connection closed"] * 2]


def test_every_answered_command_is_counted_once() -> None:
    """The counters' runs cover every reply of a chunk, whichever way each was read."""
    counted: list[tuple[float, bool, int]] = []

    class Counting(Sink):
        def record_many(self, records, runs=None):  # type: ignore[no-untyped-def]
            counted.extend(runs or [(0.0, r.failed, 1) for r in singles(records)])
            super().record_many(records, runs)

    sink = Counting()
    follower = RedisFollower(sink, FollowerOptions())
    follower.client_data(b"".join(_command(*c) for c in COMMANDS) + _command(b"GET", b"c") * 4)
    follower.server_data(b"+OK\r\n$1\r\n1\r\n*0\r\n+OK\r\n$-1\r\n-ERR no\r\n")
    follower.server_data(b"$1\r\nx\r\n" * 3)
    follower.server_data(b"$-1\r\n")
    assert sum(n for _, _, n in counted) == len(sink.records) == len(COMMANDS) + 4
    assert sum(n for _, failed, n in counted if failed) == 1


def test_lone_commands_and_their_replies_one_by_one() -> None:
    """A client that waits for each reply (pipeline 1): each reply read on its own, of each
    kind, and what is not one whole simple reply read the general way."""
    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    replies = [b"+OK\r\n", b"-ERR no\r\n", b":7\r\n", b"$5\r\nab\r\nc\r\n", b"$-1\r\n",
               b"$0\r\n\r\n", b"*1\r\n$1\r\na\r\n", b"$3\r\nab", b"c\r\n"]
    for reply in replies:
        if reply != b"c\r\n":
            assert follower.passes_unchanged(True)
            assert follower.client_data(_command(b"GET", b"k" * 300)) is None
        assert follower.passes_unchanged(False)
        assert follower.server_data(reply) is None
    assert not follower.pending
    notes = [r.notes["redis"] for r in sink.records]
    assert [n["reply"]["type"] for n in notes] == [
        "status", "error", "integer", "bulk", "null", "bulk", "array", "bulk"]
    assert [n["reply"].get("size") for n in notes if n["reply"]["type"] == "bulk"] == [5, 0, 3]
    assert sink.records[1].error == "ERR no" and notes[2]["reply"]["value"] == "7"
    assert notes[0]["keys"] == ["k" * 256] and notes[0]["sizes"] == [3, 300]  # cut when built


def test_the_relay_passes_chunks_first_unless_the_follower_changes_them() -> None:
    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    assert follower.passes_unchanged(True) and follower.passes_unchanged(False)
    follower.gating = True  # command-level faults: the client's stream stops at commands
    assert not follower.passes_unchanged(True)
    follower.answers = 1  # devamb's answer waits between the server's replies
    assert not follower.passes_unchanged(False)


def test_once_command_faults_are_off_the_fast_path_comes_back() -> None:
    """Stopping at commands while faults are armed, a half command held across chunks; with
    them off again (nothing held), chunks pass first and pipelines are batches again."""
    from devamb.wire.follower import FORWARD, Decide

    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    follower.gating = True
    whole = _command(b"SET", b"k", b"1")
    assert follower.client_data(whole[:7]) == []  # held: the rest is still to come
    items = follower.client_data(whole[7:])
    assert items is not None and isinstance(items[0], Decide)
    follower.gating = False  # the fault is removed while the relay decides
    assert not follower.passes_unchanged(True)  # (the command decided on is still held)
    follower.resolve(FORWARD)
    assert follower.client_data(b"") == [whole]
    assert follower.passes_unchanged(True)  # nothing held: the fast path is back
    follower.server_data(b"+OK\r\n")
    assert follower.client_data(_command(b"GET", b"k") * 3) is None
    assert [type(p) for p in follower.pending] == [_Batch]
    follower.server_data(b"$1\r\n1\r\n" * 3)
    assert [r.method for r in sink.records] == ["SET", "GET", "GET", "GET"]
    assert not follower.pending and not follower.client.ends


def test_a_batch_answered_whole_by_one_chunk_is_one_run() -> None:
    counted: list[tuple[float, bool, int]] = []

    class Counting(Sink):
        def record_one(self, lazy, duration_ms, failed):  # type: ignore[no-untyped-def]
            counted.append((duration_ms, failed, lazy.count))
            super().record_one(lazy, duration_ms, failed)

    sink = Counting()
    follower = RedisFollower(sink, FollowerOptions())
    follower.client_data(_command(b"GET", b"k") * 4)
    follower.server_data(b"$1\r\nx\r\n$2\r\nxy\r\n$-1\r\n$0\r\n\r\n")
    assert [n for _, failed, n in counted if not failed] == [4] and not follower.pending
    assert [r.notes["redis"]["reply"].get("size") for r in sink.records] == [1, 2, None, 0]
    follower.client_data(_command(b"INCR", b"k") * 3)
    follower.server_data(b":1\r\n-ERR not an integer\r\n:2\r\n")  # an error: runs apart
    assert [r.error for r in sink.records[4:]] == [None, "ERR not an integer", None]


def test_a_run_counted_in_one_pass_is_recorded_command_by_command() -> None:
    """A chunk of common-form commands counted without reading them (resp_run.py) and a chunk
    of replies checked whole the same way: each command still its own record, as read."""
    sink = Sink()
    follower = RedisFollower(sink, FollowerOptions())
    follower.client_data(_command(b"GET", b"k1") + _command(b"get", b"key:2"))
    assert [type(p) for p in follower.pending] == [_Batch]
    follower.server_data(b"$1\r\nx\r\n$0\r\n\r\n")
    follower.client_data(_command(b"SET", b"k", b"v") * 2 + _command(b"INCR", b"n"))
    follower.server_data(b"+OK\r\n+OK\r\n:7\r\n")
    assert not follower.pending
    notes = [r.notes["redis"] for r in sink.records]
    assert [(n["command"], n["keys"], n["argc"]) for n in notes] == [
        ("GET", ["k1"], 2), ("GET", ["key:2"], 2), ("SET", ["k"], 3), ("SET", ["k"], 3),
        ("INCR", ["n"], 2)]
    assert [n["reply"] for n in notes] == [
        {"type": "bulk", "size": 1, "bytes": 7}, {"type": "bulk", "size": 0, "bytes": 6},
        {"type": "status", "text": "OK", "bytes": 5}, {"type": "status", "text": "OK", "bytes": 5},
        {"type": "integer", "value": "7", "bytes": 4}]
    assert [r.error for r in sink.records] == [None] * 5


async def test_connections_pipelining_together_are_each_recorded_before_their_replies_arrive(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """With several connections open, a chunk that passes unchanged is read at the end of the
    loop's turn (tcp_follow.Later): still before the client can read what was written, so the
    store holds a pipeline's records when its replies are in, each command once and in order."""
    server = RedisServer(tmp_path, None).start()
    try:
        engine = await make_engine(PROFILE.format(port=server.port))
        bound = engine.services["cache"].bound
        assert bound is not None
        clients = [await Client.open(bound[1]) for _ in range(4)]

        async def one(n: int, client: Client) -> None:
            for round_ in range(5):
                keys = [f"c{n}:r{round_}:k{i}" for i in range(16)]
                replies = await client.pipeline(*[("SET", k, "v") if i % 2 else ("GET", k)
                                                  for i, k in enumerate(keys)])
                assert len(replies) == 16
                kept = {e.notes["redis"]["keys"][0]: e for e in engine.store.all()
                        if "redis" in e.notes and e.notes["redis"]["keys"]}
                assert all(k in kept for k in keys), f"connection {n}, round {round_}"
                assert [kept[k].id for k in keys] == sorted(kept[k].id for k in keys)

        await asyncio.gather(*(one(n, c) for n, c in enumerate(clients)))
        for client in clients:
            client.writer.close()
        found = [e for e in engine.store.all() if "redis" in e.notes]
        assert len(found) == 4 * 5 * 16
        assert len({e.id for e in found}) == len(found)
        assert engine.services["cache"].counters.requests >= len(found)
    finally:
        server.kill()
