"""The TCP relay against real TCP servers: round trip, half-close, backpressure, failures."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

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
    targets:
      up: tcp://127.0.0.1:{port}
      other: tcp://127.0.0.1:{port2}
      dead: tcp://127.0.0.1:1
      loop: echo
"""


async def _reply_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until the client half-closes, then answers with the digest and size it saw."""
    digest, size = hashlib.sha256(), 0
    while data := await reader.read(65536):
        digest.update(data)
        size += len(data)
    writer.write(f"{size} {digest.hexdigest()}".encode())
    await writer.drain()
    writer.close()


async def _tag(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"other")
    await writer.drain()
    writer.close()


@pytest.fixture
async def relay(make_engine: EngineFactory):
    up = await TcpUpstream(_reply_after_eof).start()
    other = await TcpUpstream(_tag).start()
    engine = await make_engine(PROFILE.format(port=up.port, port2=other.port))
    yield engine, engine.services["raw"].bound[1]
    await up.stop()
    await other.stop()


async def test_round_trip_with_half_close(relay) -> None:
    engine, port = relay
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"x" * 3_000_000
    writer.write(payload)
    await writer.drain()
    writer.write_eof()  # the upstream answers only after it sees our EOF
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
    await asyncio.sleep(0.05)
    record = engine.store.recent(1)[0]
    assert record.protocol == "tcp" and record.bytes_in == len(payload)
    assert record.bytes_out == len(answer) and record.error is None


async def test_backpressure_moves_a_large_echo_intact(relay) -> None:
    engine, port = relay
    await engine.switch("raw", "loop")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    total = 32 * 1024 * 1024
    block = bytes(range(256)) * 256

    async def send() -> None:
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    digest, got = hashlib.sha256(), 0
    while data := await asyncio.wait_for(reader.read(1 << 20), 10):
        digest.update(data)
        got += len(data)
    await sender
    writer.close()
    expected = hashlib.sha256(block * (total // len(block))).hexdigest()
    assert got == total and digest.hexdigest() == expected


async def test_unreachable_upstream_closes_the_client_promptly(relay) -> None:
    engine, port = relay
    await engine.switch("raw", "dead")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await asyncio.sleep(0.05)
    assert "cannot connect" in engine.store.recent(1)[0].error


async def test_switch_affects_new_connections_only(relay) -> None:
    engine, port = relay
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    w1.write(b"before")
    await engine.switch("raw", "other")
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    w2.write(b"?")
    assert await asyncio.wait_for(r2.read(), 5) == b"other"
    w1.write_eof()
    assert (
        await asyncio.wait_for(r1.read(), 5)
        == b"6 " + hashlib.sha256(b"before").hexdigest().encode()
    )
    w1.close()
    w2.close()


async def test_upstream_that_speaks_first_and_closes(make_engine: EngineFactory) -> None:
    """Bytes and the EOF an upstream sends the moment it accepts reach every client."""

    async def banner_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hello\r\n")
        writer.close()

    up = await TcpUpstream(banner_then_close).start()
    engine = await make_engine(PROFILE.format(port=up.port, port2=up.port))
    port = engine.services["raw"].bound[1]

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()

    try:
        for _ in range(3):
            assert await asyncio.gather(*(one() for _ in range(50))) == [b"220 hello\r\n"] * 50
    finally:
        await up.stop()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    data: bytes) -> bytes:
    writer.write(data)
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_the_record_keeps_the_preview_head_and_counts_every_byte(
    make_engine: EngineFactory,
) -> None:
    """Each chunk is counted where it arrives; the connection record keeps the first `bodies`
    bytes of each direction (a chunk across the limit: its head only), then only counts."""
    up = await TcpUpstream(_echo).start()
    engine = await make_engine(
        "version: 1\nservices:\n  raw:\n    listen: 0\n    protocol: tcp\n"
        f"    inspect: {{bodies: 10}}\n    targets:\n      up: tcp://127.0.0.1:{up.port}\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.services["raw"].bound[1])
    sent = b""
    for part in (b"abcdef", b"ghijklmn", b"opq" * 1000):  # within, across, past the limit
        assert await _exchange(reader, writer, part) == part
        sent += part
    writer.close()
    await up.stop()
    for _ in range(100):
        if engine.store.recent(1):
            break
        await asyncio.sleep(0.02)
    record = engine.store.recent(1)[0]
    assert record.bytes_in == record.bytes_out == len(sent)
    assert bytes(record.request_body.data) == bytes(record.response_body.data) == sent[:10]


async def test_a_follower_that_loses_sync_leaves_the_relay_passing_bytes(
    make_engine: EngineFactory,
) -> None:
    """A `protocol: redis` connection whose follower stops following (bytes that are not RESP)
    is relayed as bytes both ways from then on, each byte counted."""
    up = await TcpUpstream(_echo).start()
    engine = await make_engine(
        "version: 1\nservices:\n  cache:\n    listen: 0\n    protocol: redis\n"
        f"    targets:\n      up: tcp://127.0.0.1:{up.port}\n")
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", engine.services["cache"].bound[1])
    sent = b""
    for part in (b"*1\r\n$4\r\nPING\r\n", b"*1\r\n$x\r\n", b"not resp at all\r\n", b"z" * 70000):
        assert await _exchange(reader, writer, part) == part
        sent += part
    writer.close()
    await up.stop()
    for _ in range(100):
        connection = [e for e in engine.store.all() if e.bytes_in == len(sent)]
        if connection:
            break
        await asyncio.sleep(0.02)
    assert connection, [(e.method, e.bytes_in) for e in engine.store.all()]
    record = connection[0]
    assert record.bytes_out == len(sent)
    assert "invalid length" in record.notes["redis"]["opaque"]
