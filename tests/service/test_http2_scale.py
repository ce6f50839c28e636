"""The http2 service at scale: a thousand streams at once over one connection, and a client that
stops reading while the upstream offers far more than memory should hold."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory
from tests.replicas import eventually
from tests.upstreams_h2 import H2Upstream

PROFILE = """
version: 1
services:
  h2:
    listen: 0
    protocol: http2
    target: up
    timeout: 60s
    targets:
      up: http://127.0.0.1:{port}
"""
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident memory in bytes (the engine runs in it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.fixture
async def h2(make_engine: EngineFactory) -> AsyncIterator[tuple[Engine, int, H2Upstream]]:
    up = await H2Upstream("up").start()
    engine = await make_engine(PROFILE.format(port=up.port))
    bound = engine.services["h2"].bound
    assert bound is not None
    yield engine, bound[1], up
    await up.stop()


def _headers(path: str, method: bytes = b"GET") -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"x"),
            (b":path", path.encode())]


async def test_a_thousand_streams_at_once_over_one_connection(h2) -> None:
    engine, port, up = h2
    client = H2Client("127.0.0.1", port, 10.0)
    count = 1000

    async def call(n: int) -> tuple[str, str, str]:
        body = hashlib.sha256(str(n).encode()).digest() * (n % 64 + 1)  # distinct, 32..2048 B
        headers = [*_headers("/echo", b"POST"), (b"x-n", str(n).encode())]
        stream = await client.open(headers, end=False)
        await stream.send_data(body, end=True)
        got = bytearray()
        said = ""
        while (item := await stream.next()).kind != "end":
            if item.kind == "headers":
                said = dict(item.headers).get(b"x-sha256", b"").decode()
            elif item.kind == "data":
                got += item.data
                stream.ack(item.flow)
            else:
                assert item.kind == "trailers", item
        return hashlib.sha256(body).hexdigest(), said, hashlib.sha256(got).hexdigest()

    try:
        connection = await client.connection()
        await eventually(lambda: connection.max_streams >= count, 10,
                         "devamb's SETTINGS allow 1000 streams")
        results = await asyncio.gather(*(call(n) for n in range(count)))
        assert up.connections == 1
    finally:
        client.close()
    for sent, upstream_saw, received in results:
        assert sent == upstream_saw == received
    assert len({sent for sent, _, _ in results}) == count
    await eventually(lambda: engine.services["h2"].counters.snapshot()["requests"] >= count, 20,
                     "every stream counted")
    records = engine.store.recent(2 * count)
    assert len(records) == count
    assert {r.status for r in records} == {200}
    assert {r.path for r in records} == {"/echo"}
    numbers = sorted(int(dict(r.request_headers or [])["x-n"]) for r in records)
    assert numbers == list(range(count))
    assert all(r.bytes_in == r.bytes_out > 0 for r in records)


async def test_a_client_that_stops_reading_holds_the_upstream_with_bounded_memory(h2) -> None:
    """8 streams offer 200 MiB between them to a client that reads nothing: devamb passes on
    only what the windows allow, so the upstream waits and devamb's memory stays bounded."""
    _, port, up = h2
    streams, size = 8, 25 * 1024 * 1024
    client = H2Client("127.0.0.1", port, 10.0)
    before = rss()
    try:
        opened = [await client.open(_headers(f"/lazy/{size}"), end=True) for _ in range(streams)]
        last = -1

        async def stalled() -> bool:  # the upstream sent something and stopped
            nonlocal last
            sent, last = last, up.sent
            await asyncio.sleep(0.3)
            return sent == up.sent > 0

        await eventually(stalled, 30, "the upstream is held by the windows")
        assert up.sent < 32 * 1024 * 1024  # of 200 MiB offered
        grown = rss() - before
        assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
        first = opened[0]  # reading again: the stream flows to its end
        received = 0
        while (item := await first.next()).kind != "end":
            assert item.kind in ("headers", "data"), item
            if item.kind == "data":
                assert item.data[:16] == bytes((received + i) % 256 for i in range(16))
                received += len(item.data)
                first.ack(item.flow)
        assert received == size
    finally:
        client.close()
