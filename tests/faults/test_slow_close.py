"""slow_close: the end of the response (HTTP) or the close (TCP) comes late."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp

from tests.faults.conftest import SetupFactory, greet
from tests.upstreams import pattern_digest


async def test_http_end_delayed_by_the_injected_clock(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="linger", kind="slow_close", delay="2s")
    async with aiohttp.ClientSession() as client, client.get(s.url + "/bytes/3000") as r:
        assert len(await r.read()) == 3000
    assert s.time is not None and s.time.slept == [2.0]
    [record] = await s.recorded(1)
    assert record.faults == ["linger"] and record.error is None


async def test_http_end_really_comes_late(setup: SetupFactory) -> None:
    s = await setup(fake=False)
    await s.add("api", name="linger", kind="slow_close", delay="300ms")
    async with aiohttp.ClientSession() as client:
        begin = time.monotonic()
        async with client.get(s.url + "/bytes/3000") as r:  # chunked: the last chunk waits
            first = await r.content.read(1000)
            first_at = time.monotonic() - begin
            rest = await r.read()
        total = time.monotonic() - begin
    assert hashlib.sha256(first + rest).hexdigest() == pattern_digest(3000)
    assert first_at < 0.25 and 0.28 <= total < 3.0


async def test_tcp_close_really_comes_late(setup: SetupFactory) -> None:
    s = await setup(fake=False, tcp_handler=greet(b"bye"))
    await s.add("raw", name="linger", kind="slow_close", delay="300ms")
    begin = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"bye"
    first_at = time.monotonic() - begin
    assert await asyncio.wait_for(reader.read(), 5) == b""
    closed_at = time.monotonic() - begin
    writer.close()
    assert first_at < 0.25 and 0.28 <= closed_at < 3.0
