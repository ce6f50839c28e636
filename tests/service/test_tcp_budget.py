"""An open TCP connection's full previews count against the record budget (issue 22): the
store makes room for them by dropping completed records before the connection's record
arrives, and counts them once when it does. Real relay, real sockets."""

from __future__ import annotations

import asyncio

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


async def test_open_previews_are_counted_and_released(make_engine: EngineFactory) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        engine = await make_engine(PROFILE.format(port=up.port))
        port = engine.services["raw"].bound[1]
        store = engine.store
        for _ in range(6):  # six completed records of 2 x 100 bytes
            await _exchange(port, b"a" * 100)
        await asyncio.sleep(0.05)
        assert len(store) == 6 and store.reserved == 0
        sizes = [record.size for record in store.all()]
        store.budget = store.bytes + 4096  # room for one open direction's preview, not two
        dropped = next(n for n in range(1, 7) if sum(sizes[:n]) >= 4096)

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # small chunks first: a preview not yet full is not counted
            writer.write(b"b" * 1000)
            await reader.readexactly(1000)
        assert store.reserved == 0 and len(store) == 6
        writer.write(b"c" * 3000)  # both previews fill (4,096 of 6,000 bytes each way)
        await reader.readexactly(3000)
        assert store.reserved == 2 * 4096
        assert store.bytes <= store.budget
        # the records that completed first made room for the second preview
        assert dropped > 1 and len(store) == 6 - dropped
        assert [r.id for r in store.all()] == list(range(dropped + 1, 7))

        writer.write(b"d" * 50_000)  # counted from now on, never reserved twice
        await reader.readexactly(50_000)
        assert store.reserved == 2 * 4096
        writer.close()
        await writer.wait_closed()
        for _ in range(100):
            if len(store) == 6 - dropped + 1:
                break
            await asyncio.sleep(0.01)
        record = store.recent(1)[0]
        assert record.bytes_in == record.bytes_out == 56_000
        assert len(record.request_body.data) == len(record.response_body.data) == 4096
        assert store.reserved == 0  # released as the record arrived, which counts itself
        assert store.bytes == sum(r.size for r in store.all()) <= store.budget
    finally:
        await up.stop()


async def test_a_record_that_never_fills_reserves_nothing(make_engine: EngineFactory) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        engine = await make_engine(PROFILE.format(port=up.port))
        port = engine.services["raw"].bound[1]
        await _exchange(port, b"x" * 4095)
        await _exchange(port, b"y" * 4096)  # exactly full: reserved, then released
        await asyncio.sleep(0.05)
        store = engine.store
        assert store.reserved == 0 and len(store) == 2
        assert store.bytes == sum(r.size for r in store.all())
        assert [len(r.response_body.data) for r in store.all()] == [4095, 4096]
    finally:
        await up.stop()
