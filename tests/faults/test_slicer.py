"""slicer: the body arrives intact, in small pieces with pauses (HTTP and TCP)."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp

from tests.faults.conftest import SetupFactory, get, greet
from tests.upstreams import pattern_chunk, pattern_digest


async def test_http_body_intact_in_pieces(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="bits", kind="slicer", size=100, delay="10ms")
    async with aiohttp.ClientSession() as client, client.get(s.url + "/bytes/5000") as r:
        body = await r.read()
    assert hashlib.sha256(body).hexdigest() == pattern_digest(5000)
    assert s.time is not None and s.time.slept == [0.01] * 50
    [record] = await s.recorded(1)
    assert record.faults == ["bits"] and record.error is None


async def test_http_pieces_really_arrive_apart(setup: SetupFactory) -> None:
    s = await setup(fake=False)
    await s.add("api", name="bits", kind="slicer", size=100, delay="30ms")
    reader, writer = await asyncio.open_connection(*s.engine.services["api"].bound)
    writer.write(get("/bytes/1000?length=1"))
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head
    begin, pieces, body = time.monotonic(), [], b""
    while len(body) < 1000:
        piece = await asyncio.wait_for(reader.read(65536), 5)
        assert piece
        pieces.append(len(piece))
        body += piece
    writer.close()
    assert body == pattern_chunk(0, 1000)
    assert len(pieces) >= 5 and max(pieces) <= 100
    assert time.monotonic() - begin >= 0.15


async def test_http_request_body_sliced_upstream(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="bits", kind="slicer", size="1KiB", delay="1ms",
                direction="upstream")
    payload = bytes(range(256)) * 40
    async with aiohttp.ClientSession() as client, client.post(s.url + "/p", data=payload) as r:
        seen = await r.json()
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert s.time is not None and len(s.time.slept) == 10


async def test_tcp_stream_intact_in_pieces(setup: SetupFactory) -> None:
    data = pattern_chunk(3, 1000)
    s = await setup(fake=False, tcp_handler=greet(data))
    await s.add("raw", name="bits", kind="slicer", size=100, delay="20ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    pieces = []
    while piece := await asyncio.wait_for(reader.read(65536), 5):
        pieces.append(piece)
    writer.close()
    assert b"".join(pieces) == data
    assert len(pieces) >= 5 and max(map(len, pieces)) <= 100
    [record] = await s.recorded(1)
    assert record.faults == ["bits"]


async def test_tcp_slices_with_the_injected_clock(setup: SetupFactory) -> None:
    data = pattern_chunk(4, 1000)
    s = await setup(tcp_handler=greet(data))
    await s.add("raw", name="bits", kind="slicer", size=100, delay="10ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    assert await asyncio.wait_for(reader.read(-1), 5) == data
    writer.close()
    assert s.time is not None and s.time.slept == [0.01] * 10


async def test_tcp_connection_with_a_shaped_direction_ends_when_the_client_closes_first(
    setup: SetupFactory,
) -> None:
    s = await setup()  # the echo upstream closes once the client half-closes
    await s.add("raw", name="bits", kind="slicer", size=2, delay="1ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    writer.write(b"hello")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(-1), 5) == b"hello"
    writer.close()
    [record] = await s.recorded(1, timeout=1.0)  # the relay is done: recorded
    assert record.faults == ["bits"]
    assert not s.engine.lifecycle.listeners["raw"].relays
