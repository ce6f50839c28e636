"""down: the service refuses connections as if its dependency were gone."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.faults.conftest import SetupFactory, get, raw_exchange


async def test_http_request_is_reset(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="gone", kind="down")
    received, error = await raw_exchange(s.engine.services["api"].bound[1], get())
    assert isinstance(error, ConnectionResetError) and received == b""
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientError):
            async with client.get(s.url + "/x") as r:
                await r.read()
    assert s.http.seen == []
    first, second = await s.recorded(2)
    assert first.faults == second.faults == ["gone"]
    assert first.error == "fault down: connection refused"


async def test_http_comes_back_when_turned_off(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="gone", kind="down")
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientError):
            await client.get(s.url + "/x")
        await s.engine.set_fault("api", "gone", False)
        assert (await client.get(s.url + "/x")).status == 200


async def test_tcp_connection_reset_at_once(setup: SetupFactory) -> None:
    connections = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    s = await setup(tcp_handler=count)
    await s.add("raw", name="gone", kind="down")
    begin = time.monotonic()
    received, error = await raw_exchange(s.tcp_port, b"PING\r\n")
    assert isinstance(error, ConnectionResetError) and received == b""
    assert time.monotonic() - begin < 1.0
    await asyncio.sleep(0.05)
    assert connections == []
    [record] = await s.recorded(1)
    assert record.faults == ["gone"] and "connection refused" in (record.error or "")
