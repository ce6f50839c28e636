"""Exchanges complete out of the order they started in (a WebSocket or TCP connection opened early
closes late): `show`, `replay`, export and the traffic list still find every one, in id order.

Real engine process, real upstreams on 127.0.0.1 port 0, real sockets; bounded by timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from tests.hardening.engine_process import EngineProcess
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: up
    timeout: 5s
    targets:
      up: {http}
  raw:
    listen: 0
    protocol: tcp
    target: up
    timeout: 5s
    targets:
      up: tcp://127.0.0.1:{tcp}
"""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def engine(tmp_path: Path, upstream: HttpUpstream) -> AsyncIterator[EngineProcess]:
    tcp = await TcpUpstream(echo_bytes).start()
    proc = EngineProcess(tmp_path, PROFILE.format(http=upstream.url, tcp=tcp.port))
    try:
        yield await proc.start()
    finally:
        await proc.close()
        await tcp.stop()


async def _wait_for(engine: EngineProcess, count: int) -> list[dict]:  # type: ignore[type-arg]
    for _ in range(200):
        listed = await engine.control.exchanges(limit=1000)
        if len(listed) >= count:
            return listed  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} exchanges, got {len(listed)}")


async def test_tcp_connections_closed_in_reverse_are_all_found(engine: EngineProcess) -> None:
    host, port = await engine.address("raw")
    conns = []
    for i in range(4):  # opened in order: ids ascending
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        writer.write(b"hello %d" % i)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b"hello %d" % i
        conns.append((reader, writer))
    for reader, writer in reversed(conns):  # closed last-opened first: completed in reverse
        writer.close()
        await asyncio.wait_for(reader.read(), 5)
        await asyncio.sleep(0.1)  # let the engine complete this one before the next closes
    listed = await _wait_for(engine, 4)
    ids = [item["id"] for item in listed]
    assert ids == sorted(ids), f"the traffic list is out of id order: {ids}"
    for exchange_id in ids:
        detail = await engine.control.exchange(exchange_id)  # raised "no exchange N" before
        assert detail["id"] == exchange_id and detail["service"] == "raw"


async def test_websocket_closed_after_later_requests_is_shown_and_exported(
    engine: EngineProcess,
) -> None:
    host, port = await engine.address("api")
    url = f"http://{host}:{port}"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        ws = await client.ws_connect(f"{url}/ws")
        await ws.send_str("hi")
        assert (await ws.receive(timeout=5)).data == "echo:hi"
        for i in range(5):
            async with client.get(f"{url}/after/{i}") as resp:
                assert resp.status == 200
        await ws.close()
    listed = await _wait_for(engine, 6)
    ids = [item["id"] for item in listed]
    assert ids == sorted(ids), f"the traffic list is out of id order: {ids}"
    [ws_item] = [item for item in listed if item["status"] == 101]
    assert ws_item["id"] == min(ids)  # it started first...
    detail = await engine.control.exchange(ws_item["id"])  # ...and completed last
    assert detail["path"] == "/ws"
    har = await engine.control.export_har()
    urls = [entry["request"]["url"] for entry in har["log"]["entries"]]
    assert urls[0].endswith("/ws") and len(urls) == 6, urls
    replayed = await engine.control.replay(ids[1])  # a GET that started after the WebSocket
    assert replayed["exchange"]["status"] == 200
    with pytest.raises(ControlError):
        await engine.control.exchange(10_000)  # an id never seen still says so
