"""reset: the client gets ECONNRESET — before the upstream, or after N bytes (HTTP and TCP)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.faults.conftest import SetupFactory, get, greet, raw_exchange
from tests.upstreams import pattern_chunk


async def test_http_reset_before_the_upstream(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="rst", kind="reset")
    received, error = await raw_exchange(s.engine.services["api"].bound[1], get())
    assert isinstance(error, ConnectionResetError) and received == b""
    assert s.http.seen == []
    [record] = await s.recorded(1)
    assert record.faults == ["rst"] and "reset" in (record.error or "")


async def test_http_reset_with_an_aiohttp_client(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="rst", kind="reset", probability=0.5)
    outcomes = []
    async with aiohttp.ClientSession() as client:
        for _ in range(20):
            try:
                async with client.get(s.url + "/x") as r:
                    outcomes.append(r.status)
            except aiohttp.ClientError:
                outcomes.append("reset")
    assert 0 < outcomes.count("reset") < 20 and outcomes.count(200) == 20 - outcomes.count("reset")
    assert len(s.http.seen) == outcomes.count(200)


async def test_http_reset_after_response_bytes(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="rst", kind="reset", after_bytes="1KiB")
    received, error = await raw_exchange(s.engine.services["api"].bound[1], get("/bytes/100000"))
    assert isinstance(error, ConnectionResetError)
    body = received.partition(b"\r\n\r\n")[2]
    assert len(body) <= 1024 + 32  # (chunk framing)
    assert len(s.http.seen) == 1
    [record] = await s.recorded(1)
    assert record.faults == ["rst"] and record.error == "fault reset after 1024 bytes"
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientError):
            async with client.get(s.url + "/bytes/100000") as r:
                await r.read()


async def test_http_reset_after_request_bytes(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="rst", kind="reset", after_bytes=100, direction="upstream")
    body = b"x" * 10000
    head = f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    received, error = await raw_exchange(s.engine.services["api"].bound[1], head + body)
    assert isinstance(error, ConnectionResetError), (received, error)
    [record] = await s.recorded(1)
    assert record.faults == ["rst"] and record.error == "fault reset after 100 bytes"


async def test_tcp_reset_at_once(setup: SetupFactory) -> None:
    connections = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    s = await setup(tcp_handler=count)
    await s.add("raw", name="rst", kind="reset")
    received, error = await raw_exchange(s.tcp_port, b"hello")
    assert isinstance(error, ConnectionResetError) and received == b""
    await asyncio.sleep(0.05)
    assert connections == []
    [record] = await s.recorded(1)
    assert record.faults == ["rst"] and "refused" in (record.error or "")


async def test_tcp_reset_after_bytes(setup: SetupFactory) -> None:
    s = await setup(tcp_handler=greet(pattern_chunk(0, 50_000), wait=0.05))
    await s.add("raw", name="rst", kind="reset", after_bytes=100)
    received, error = await raw_exchange(s.tcp_port, b"")
    assert isinstance(error, ConnectionResetError)
    assert received == pattern_chunk(0, 50_000)[: len(received)] and len(received) <= 100
    [record] = await s.recorded(1)
    assert record.faults == ["rst"] and record.error == "fault reset after 100 bytes"


async def test_tcp_reset_after_bytes_sent_upstream(setup: SetupFactory) -> None:
    got = bytearray()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                got.extend(data)
        except ConnectionError:
            pass
        writer.close()

    s = await setup(tcp_handler=sink)
    await s.add("raw", name="rst", kind="reset", after_bytes=100, direction="upstream")
    received, error = await raw_exchange(s.tcp_port, b"y" * 5000)
    assert isinstance(error, ConnectionResetError), (received, error)
    await asyncio.sleep(0.1)
    assert len(got) <= 100
    [record] = await s.recorded(1)
    assert record.faults == ["rst"]
