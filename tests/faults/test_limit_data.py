"""limit_data: the connection is closed (FIN, not reset) after N bytes in a direction."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.faults.conftest import SetupFactory, get, greet, raw_exchange
from tests.upstreams import pattern_chunk


async def test_http_response_cut_after_n_body_bytes(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="cap", kind="limit_data", bytes=1000)
    received, error = await raw_exchange(s.engine.services["api"].bound[1],
                                         get("/bytes/100000?length=1"))
    assert error is None  # a plain close: everything before it arrives
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 100000" in head
    assert body == pattern_chunk(0)[:1000]
    [record] = await s.recorded(1)
    assert record.faults == ["cap"] and record.error == "fault limit_data: closed after 1000 bytes"


async def test_http_client_sees_a_short_body(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="cap", kind="limit_data", bytes="1KiB")
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with client.get(s.url + "/bytes/100000") as r:
                await r.read()


async def test_tcp_downstream_cut_after_n_bytes(setup: SetupFactory) -> None:
    data = pattern_chunk(5, 10_000)
    s = await setup(tcp_handler=greet(data))
    await s.add("raw", name="cap", kind="limit_data", bytes=1000)
    received, error = await raw_exchange(s.tcp_port, b"")
    assert error is None and received == data[:1000]
    [record] = await s.recorded(1)
    assert record.faults == ["cap"] and record.error == "fault limit_data: closed after 1000 bytes"


async def test_tcp_upstream_cut_after_n_bytes(setup: SetupFactory) -> None:
    got = bytearray()
    done = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                got.extend(data)
        except ConnectionError:
            pass
        done.set()
        writer.close()

    s = await setup(tcp_handler=sink)
    await s.add("raw", name="cap", kind="limit_data", bytes=1000, direction="upstream")
    received, error = await raw_exchange(s.tcp_port, b"z" * 5000)
    await asyncio.wait_for(done.wait(), 5)
    assert bytes(got) == b"z" * 1000
    assert received == b"" and error is None
    [record] = await s.recorded(1)
    assert record.faults == ["cap"]
