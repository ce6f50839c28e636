"""Runs of single-key commands (one read of a pipelining client): one write per shard, the
replies taken at once and put back in the client's order; other commands among them take the
general path, in order. Real redis-servers, and a fake shard that answers a byte at a time."""

from __future__ import annotations

import asyncio

import pytest

from devamb.cluster.hashring import HashRing
from devamb.targets.shards import encoder
from devamb.targets.shards.parser import CommandReader
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


def test_whole_reads_chunks_of_whole_commands_of_bulk_strings_only() -> None:
    get, set_ = encoder.command([b"GET", b"k"]), encoder.command([b"SET", b"k", b"v\r\n*x"])
    reader = CommandReader()
    assert reader.whole(get + get) == ([[b"GET", b"k"]] * 2, [get[1:-2]] * 2)
    assert reader.whole(get) == ([[b"GET", b"k"]], [])  # one command: the chunk is its bytes
    assert reader.whole(get + set_) is None  # "\r\n*" in a value: not where commands split
    assert reader.whole(get + get[:-3]) is None  # the last command is incomplete
    assert reader.whole(get + b"PING\r\n") is None  # inline
    assert reader.whole(b"*2\r\n$3\r\nGET\r\n+k\r\n" + get) is None  # a status, not a bulk
    assert reader.whole(b"*2\r\n$3\r\nGET\r\n=5\r\ntxt:k\r\n" + get) is None  # verbatim
    assert reader.whole(b"*2\r\n$3\r\nGET\r\n:1\r\n" + get) is None  # a number
    assert reader.whole(b"*2\r\n$3\r\nGET\r\n(12\r\n" + get) is None  # a big number
    odd = encoder.command([b"SET", b"k", b"a\r\n+b"])  # looks like a status: `feed` reads it
    assert reader.whole(odd + get) is None
    assert reader.feed(odd + get) == [([b"SET", b"k", b"a\r\n+b"], odd), ([b"GET", b"k"], get)]
    assert reader.whole(b"*1\r\n*1\r\n$1\r\nk\r\n" + get) is None  # nested
    assert reader.whole(b"*0\r\n" + get) is None  # nothing asked
    for other in (b"$-1", b"-ERR x", b",1.5", b"#t", b"_", b"%1\r\n$1\r\na\r\n$1\r\nb",
                  b"~1\r\n$1\r\na", b">1\r\n$1\r\na", b"|1\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc"):
        assert reader.whole(b"*2\r\n$3\r\nGET\r\n" + other + b"\r\n" + get) is None, other
    # what `whole` turned down, `feed` reads (the reader holds nothing of it)
    assert reader.feed(get + get[:-3]) == [([b"GET", b"k"], get)]
    assert reader.feed(get[-3:]) == [([b"GET", b"k"], get)]
    assert reader.whole(get + get) is not None


@pytest.mark.parametrize("count", [1, 2, 3])
async def test_single_key_commands_among_others_keep_their_order(
    make_engine: EngineFactory, shards: list[RedisServer], count: int
) -> None:
    """Runs end at every other kind of command (fan-out, local, hash tags, unknown,
    refused, a transaction) and start again after it; every reply comes back in order (over
    one, two and three shards: a run's parts are numbered one way for two)."""
    await flush(shards)
    engine = await make_engine(profile(shards[:count]))
    client = await Client.open(port_of(engine))
    commands: list[tuple[object, ...]] = []
    expected: list[object] = []
    for i in range(40):
        commands += [("SET", f"a{i}", i), ("GET", f"a{i}"), ("INCR", f"n{i % 5}")]
        expected += ["OK", str(i).encode(), i // 5 + 1]
        if i % 4 == 0:
            commands += [("MGET", f"a{i}", f"a{i // 2}", "missing"), ("PING",),
                         ("SET", f"{{t}}:{i}", "x"), ("GET", f"{{t}}:{i}")]
            expected += [[str(i).encode(), str(i // 2).encode(), None], "PONG", "OK", b"x"]
        if i % 10 == 3:
            commands += [("MULTI",), ("INCR", "{t}:c"), ("EXEC",), ("NOPE", "x"),
                         ("KEYS", "*")]
            expected += ["OK", "QUEUED", [i // 10 + 1], "unknown", "not supported"]
    replies = await client.pipeline(*commands)
    assert len(replies) == len(expected)
    for reply, want in zip(replies, expected, strict=True):
        if isinstance(reply, RespError):
            assert isinstance(want, str) and want in str(reply), (reply, want)
        else:
            assert reply == want
    await client.close()


async def test_a_run_lands_each_key_on_its_shard_for_resp3_clients_too(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    direct = await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    assert isinstance(await client.call("HELLO", 3), list | dict)  # (a map, read as items)
    keys = [f"user:{i}" for i in range(200)]
    await client.send_raw(b"".join(encoder.command([b"HSET", k.encode(), b"f", k.encode()])
                                   for k in keys))
    assert await client.replies_(200) == [1] * 200
    await client.send_raw(b"".join(encoder.command([b"HGETALL", k.encode()]) for k in keys))
    while len(client.ready) < 200:
        client.ready.extend(client.replies.feed(await asyncio.wait_for(
            client.reader.read(65536), 10)))
    assert [bytes(r) for r in client.ready] == [  # RESP3 maps, from the RESP3 connections
        b"%%1\r\n$1\r\nf\r\n$%d\r\n%s\r\n" % (len(k), k.encode()) for k in keys]
    ring = HashRing([s.name for s in shards])
    for key in keys:
        owner = [s.name for s in shards].index(ring.node_for(key.encode()))
        assert await direct[owner].call("HGET", key, "f") == key.encode()
    assert all(s["resp3_connected"] for s in details(engine)["shards"])
    await client.close()


async def _dribbling_shard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each command (`+OK`, or the key back for GET) a byte at a time."""
    commands = CommandReader()
    while data := await reader.read(65536):
        for args, _raw in commands.feed(data):
            reply = encoder.bulk(args[1]) if args[0] == b"GET" else encoder.OK
            for i in range(len(reply)):
                writer.write(reply[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)
    writer.close()


async def test_replies_arriving_a_byte_at_a_time_fill_the_run(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    await flush(shards)
    fake = await asyncio.start_server(_dribbling_shard, "127.0.0.1", 0)
    fake_port = fake.sockets[0].getsockname()[1]
    listed = f"[{shards[0].url}, tcp://127.0.0.1:{fake_port}]"
    engine = await make_engine(profile(shards[:1]).replace(f"[{shards[0].url}]", listed))
    try:
        client = await Client.open(port_of(engine))
        keys = [f"k{i}" for i in range(30)]
        assert await client.pipeline(*[("SET", k, k) for k in keys]) == ["OK"] * 30
        replies = await client.pipeline(*[("GET", k) for k in keys])
        assert replies == [k.encode() for k in keys]  # (the fake answers the key itself)
        ring = HashRing([shards[0].name, f"127.0.0.1:{fake_port}"])
        assert len({ring.node_for(k.encode()) for k in keys}) == 2  # both shards took part
        await client.close()
    finally:
        fake.close()


async def test_a_shard_lost_in_the_middle_of_a_run_fails_only_its_part(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    await flush(shards)

    async def half_then_close(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        count = len(CommandReader().feed(data))
        writer.write(encoder.OK * (count // 2))  # then the connection is lost
        await writer.drain()
        writer.close()

    fake = await asyncio.start_server(half_then_close, "127.0.0.1", 0)
    fake_name = f"127.0.0.1:{fake.sockets[0].getsockname()[1]}"
    listed = f"[{shards[0].url}, tcp://{fake_name}]"
    engine = await make_engine(profile(shards[:1]).replace(f"[{shards[0].url}]", listed))
    try:
        client = await Client.open(port_of(engine))
        keys = [f"k{i}" for i in range(40)]
        replies = await client.pipeline(*[("SET", k, 1) for k in keys])
        ring = HashRing([shards[0].name, fake_name])
        on_fake = [k for k in keys if ring.node_for(k.encode()) == fake_name]
        answered = set(on_fake[: len(on_fake) // 2])
        for key, reply in zip(keys, replies, strict=True):
            if ring.node_for(key.encode()) != fake_name or key in answered:
                assert reply == "OK"
            else:
                assert isinstance(reply, RespError) and f"shard {fake_name}" in str(reply)
        state = {s["name"]: s for s in details(engine)["shards"]}
        assert state[fake_name]["errors"] == len(on_fake) - len(answered)
        await client.close()
    finally:
        fake.close()


async def test_a_client_that_stops_reading_gets_every_reply_in_order_once_it_reads(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    """A pipelining client that sends 15,000 GETs of 4 KiB values and reads nothing for 2 s:
    60 MB of replies, more than the sockets between it and the engine can hold (tcp_rmem and
    tcp_wmem at most 32 + 4 MiB), and more than the 10,000 replies a session may owe. The reads
    served in the socket's callback (ClientChunks.take) give way to the session's task, which
    waits for the client; once it reads again every reply comes, in order, and the connection
    goes on."""
    await flush(shards)
    engine = await make_engine(profile(shards))
    keys, size = 500, 4096
    values = [b"%0*d" % (size, i) for i in range(keys)]
    client = await Client.open(port_of(engine))
    await client.send_raw(b"".join(
        encoder.command([b"SET", b"k%d" % i, value]) for i, value in enumerate(values)))
    assert await client.replies_(keys) == ["OK"] * keys
    order = [(i * 7919) % keys for i in range(15_000)]  # the keys in a scattered order
    writing = asyncio.create_task(client.send_raw(
        b"".join(encoder.command([b"GET", b"k%d" % k]) for k in order)))
    await asyncio.sleep(2)  # not reading: the engine fills the sockets and then waits
    head = b"$%d\r\n" % size
    expected = b"".join(head + values[k] + b"\r\n" for k in order)
    got = await asyncio.wait_for(client.reader.readexactly(len(expected)), 60)
    await asyncio.wait_for(writing, 30)
    assert got == expected
    assert await client.call("GET", "k1") == values[1]
    await client.close()


async def test_a_chunk_with_a_keyless_single_key_command_is_answered_in_order(
    make_engine: EngineFactory, shards: list[RedisServer]
) -> None:
    """A GET without its key among whole commands is no run: each command is answered in
    turn (the arity error in its place), and the connection goes on."""
    await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    for chunk in ([[b"GET"], [b"GET"]],
                  [[b"SET", b"a", b"1"], [b"GET"], [b"GET", b"a"]],
                  [[b"SET", b"b", b"2", b"EX", b"100"], [b"GET"], [b"GET", b"b"]]):
        await client.send_raw(b"".join(map(encoder.command, chunk)))
        replies = await client.replies_(len(chunk))
        for args, reply in zip(chunk, replies, strict=True):
            if len(args) == 1:
                assert isinstance(reply, RespError) and "wrong number" in str(reply), reply
            else:
                assert not isinstance(reply, RespError), reply
    assert await client.call("GET", "a") == b"1"
    await client.close()


@pytest.mark.parametrize("odd", [b":5", b"$-1", b"-ERR x", b"_", b",1.5", b"#t",
                                 b"%1\r\n$1\r\na\r\n$1\r\nb", b"~1\r\n$1\r\na"])
@pytest.mark.parametrize("where", ["name", "key", "value", "extra"])
async def test_a_chunk_with_an_element_that_is_no_bulk_string_is_a_protocol_error(
    make_engine: EngineFactory, shards: list[RedisServer], odd: bytes, where: str
) -> None:
    """Whole chunks are read before their arguments are checked: an element of another type
    (as a name, a key, a value or a later argument) is found all the same. The commands
    before it are served, then the protocol error, as the pure-Python reader says it; the
    shards' connections, shared by every client, never see it."""
    await flush(shards)
    engine = await make_engine(profile(shards))
    client = await Client.open(port_of(engine))
    args = {"name": [odd, b"$1\r\nk"], "key": [b"$3\r\nGET", odd],
            "value": [b"$3\r\nSET", b"$1\r\nk", odd],
            "extra": [b"$3\r\nSET", b"$1\r\nk", b"$1\r\nv", b"$2\r\nEX", odd]}[where]
    bad = b"*%d\r\n%s\r\n" % (len(args), b"\r\n".join(args))
    good = [encoder.command([b"SET", b"k%d" % i, b"v"]) for i in range(6)]
    await client.send_raw(b"".join(good) + bad + good[0])
    replies = await client.replies_(7)
    assert replies[:6] == ["OK"] * 6
    assert isinstance(replies[6], RespError) and "Protocol error" in str(replies[6])
    other = await Client.open(port_of(engine))
    assert await other.pipeline(("GET", "k1"), ("GET", "k5")) == [b"v", b"v"]
    await other.close()
    await client.close()


class _Ready:
    def __init__(self) -> None:
        self.calls = 0

    def ready(self) -> None:
        self.calls += 1


@pytest.mark.parametrize("order", [
    bytes([0, 1, 1, 0, 1]),  # a run read whole over two shards: the order as bytes
    [2, 0, 1, 1, 2, 0],  # three parts
    [1, 0],  # the shortest run two parts can have
])
def test_a_runs_replies_are_merged_in_the_clients_order(order: bytes | list[int]) -> None:
    """`Run.part_done` puts each part's replies back where its commands were, whatever the
    parts' number and however the order is held; each part's replies filled in two pieces."""
    from devamb.targets.shards.run import Run, RunPart

    session = _Ready()
    run = Run(session)  # type: ignore[arg-type]
    run.order = order
    run.count = len(order)
    count = max(order) + 1
    parts = [RunPart(run, index, list(order).count(index)) for index in range(count)]
    run.parts = {object(): part for part in parts}  # type: ignore[misc]
    run.left = count
    for index, part in enumerate(parts):
        replies = [b":%d%d\r\n" % (index, n) for n in range(part.left)]
        assert part.fill(replies[:1], 0) == 1
        if replies[1:]:  # (a part of one reply is done by its first)
            assert part.fill(replies[1:], 0) == len(replies) - 1
    seen = [0] * count
    expected = []
    for index in order:
        expected.append(b":%d%d\r\n" % (index, seen[index]))
        seen[index] += 1
    assert run.reply == b"".join(expected)
    assert session.calls == 1
