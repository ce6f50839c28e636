"""An open TCP connection's previews count against the record budget (issue 22): the store
makes room for them by dropping completed records as the connection's first bytes pass (or,
beyond the share open records may reserve ahead, once a preview fills), and counts them once
when its record arrives. Real relay, real sockets."""

from __future__ import annotations

import asyncio

from devamb.inspect.store import AHEAD_SHARE, ExchangeStore
from tests.conftest import EngineFactory
from tests.upstreams import TcpUpstream

PROFILE = """
version: 1
services:
  raw:
    listen: 0
    protocol: tcp
    target: up
    timeout: 2s
    inspect: {{bodies: 4096}}
    targets:
      up: tcp://127.0.0.1:{port}
"""


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _exchange(port: int, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()


async def _records(store: ExchangeStore, count: int) -> None:
    for _ in range(200):
        if len(store) == count and not store.reserved:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(store)} records, {store.reserved} bytes reserved")


async def _relay(make_engine: EngineFactory, up: TcpUpstream):  # type: ignore[no-untyped-def]
    engine = await make_engine(PROFILE.format(port=up.port))
    return engine.store, engine.services["raw"].bound[1]


async def test_an_open_connection_makes_room_as_it_starts(make_engine: EngineFactory) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        store, port = await _relay(make_engine, up)
        for _ in range(6):  # six completed records with full previews both ways
            await _exchange(port, b"a" * 5000)
        await _records(store, 6)
        sizes = [record.size for record in store.all()]
        store.budget = store.bytes + 4096  # room for one open preview, not two
        assert store.budget // AHEAD_SHARE >= 2 * 4096

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"b" * 100)  # the first bytes each way: each preview's limit reserved
        await reader.readexactly(100)
        assert store.reserved == 2 * 4096 and store.bytes <= store.budget
        assert len(store) == 5 and sizes[0] >= 4096  # the first to complete made room
        assert [r.id for r in store.all()] == list(range(2, 7))

        writer.write(b"c" * 50_000)  # the previews fill: nothing reserved twice
        await reader.readexactly(50_000)
        assert store.reserved == 2 * 4096 and len(store) == 5
        writer.close()
        await writer.wait_closed()
        await _records(store, 6)  # released as the record arrived, which counts itself
        record = store.recent(1)[0]
        assert record.bytes_in == record.bytes_out == 50_100
        assert len(record.request_body.data) == len(record.response_body.data) == 4096
        assert store.bytes == sum(r.size for r in store.all()) <= store.budget
    finally:
        await up.stop()


async def test_beyond_the_ahead_share_a_preview_counts_once_full(
        make_engine: EngineFactory) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        store, port = await _relay(make_engine, up)
        store.budget = AHEAD_SHARE * 5000  # 5,000 bytes may be reserved ahead: one preview's
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"b" * 100)
        await reader.readexactly(100)
        assert store.reserved == 5000  # 4,096 for the client's preview, 904 for the other
        writer.write(b"c" * 1000)  # neither full yet: nothing more
        await reader.readexactly(1000)
        assert store.reserved == 5000
        writer.write(b"d" * 3000)  # both fill: the upstream's preview counts its rest now
        await reader.readexactly(3000)
        assert store.reserved == 2 * 4096
        writer.close()
        await writer.wait_closed()
        await _records(store, 1)
        assert store.bytes == store.recent(1)[0].size
    finally:
        await up.stop()


async def test_a_short_connection_releases_what_it_reserved(make_engine: EngineFactory) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        store, port = await _relay(make_engine, up)
        await _exchange(port, b"x" * 4095)
        await _exchange(port, b"y" * 4096)
        await _exchange(port, b"z" * 10)
        await _records(store, 3)
        assert store.bytes == sum(r.size for r in store.all())
        assert [len(r.response_body.data) for r in store.all()] == [4095, 4096, 10]
    finally:
        await up.stop()


def test_the_store_reserves_ahead_within_its_share() -> None:
    store = ExchangeStore(budget=AHEAD_SHARE * 1000)
    assert store.reserve_ahead(600) == 600
    assert store.reserve_ahead(600) == 400  # the share's rest
    assert store.reserve_ahead(600) == 0
    store.reserve(300)  # (a full preview's rest, past the share)
    assert store.reserved == store.bytes == 1300
    store.clear()  # the open records' previews are still held
    assert store.bytes == 1300
    store.release(1300)
    assert store.reserved == store.bytes == 0


SHARDS = """
version: 1
services:
  cache:
    listen: 0
    protocol: tcp
    timeout: 5s
    inspect: {{bodies: 4096}}
    targets:
      sharded: {{shards: [{shards}], key: redis}}
"""


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   *args: bytes) -> bytes:
    writer.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    line = await reader.readline()
    if line.startswith(b"$") and int(line[1:]) >= 0:
        return await reader.readexactly(int(line[1:]) + 2)
    return line


async def test_a_target_that_answers_itself_reserves_its_answer(
        make_engine: EngineFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.targets.shards.real_redis import redis_servers

    with redis_servers(tmp_path, 1) as servers:
        shards = ", ".join(f'"{s.url}"' for s in servers)
        engine = await make_engine(SHARDS.format(shards=shards))
        store, port = engine.store, engine.services["cache"].bound[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _command(reader, writer, b"SET", b"k", b"v" * 10_000)
        reply = await _command(reader, writer, b"GET", b"k")
        assert len(reply) == 10_002
        assert store.reserved == 2 * 4096  # the client's preview and the target's answer
        writer.close()
        await writer.wait_closed()
        await _records(store, 1)  # released as the record arrived
        record = store.recent(1)[0]
        assert len(record.response_body.data) == 4096
        assert store.bytes == record.size
