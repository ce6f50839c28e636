"""bandwidth: bytes per second in a direction, for HTTP bodies and TCP streams."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp

from tests.faults.conftest import SetupFactory, greet
from tests.upstreams import pattern_chunk, pattern_digest

MiB = 1024 * 1024


async def test_http_response_paced_by_the_injected_clock(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="thin", kind="bandwidth", rate="256KiB")
    async with aiohttp.ClientSession() as client, client.get(s.url + f"/bytes/{MiB}") as r:
        body = await r.read()
    assert hashlib.sha256(body).hexdigest() == pattern_digest(MiB)
    assert s.time is not None
    assert abs(sum(s.time.slept) - 4.0) < 1e-6  # 1 MiB at 256 KiB/s
    assert max(s.time.slept) <= 0.05 + 1e-9  # paced in small steps, not one long pause
    [record] = await s.recorded(1)
    assert record.faults == ["thin"] and record.bytes_out == MiB


async def test_http_request_body_paced_upstream(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="thin", kind="bandwidth", rate="50KiB", direction="upstream")
    payload = b"u" * 102_400
    async with aiohttp.ClientSession() as client, client.post(s.url + "/up", data=payload) as r:
        seen = await r.json()
    assert seen["body_size"] == len(payload)
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert s.time is not None and abs(sum(s.time.slept) - 2.0) < 1e-6


async def test_http_bandwidth_really_limits(setup: SetupFactory) -> None:
    s = await setup(fake=False)
    await s.add("api", name="thin", kind="bandwidth", rate="256KiB")
    begin = time.monotonic()
    async with aiohttp.ClientSession() as client, client.get(s.url + f"/bytes/{MiB}") as r:
        body = await r.read()
    elapsed = time.monotonic() - begin
    assert len(body) == MiB
    assert 3.5 <= elapsed < 15.0


async def test_tcp_stream_paced_by_the_injected_clock(setup: SetupFactory) -> None:
    data = pattern_chunk(1, 200_000)
    s = await setup(tcp_handler=greet(data))
    await s.add("raw", name="thin", kind="bandwidth", rate="100KiB")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    received = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert received == data
    assert s.time is not None and abs(sum(s.time.slept) - 200_000 / 102_400) < 1e-6
    [record] = await s.recorded(1)
    assert record.faults == ["thin"] and record.bytes_out == len(data)


async def test_tcp_bandwidth_really_limits(setup: SetupFactory) -> None:
    data = pattern_chunk(2, 64 * 1024)
    s = await setup(fake=False, tcp_handler=greet(data))
    await s.add("raw", name="thin", kind="bandwidth", rate="128KiB")
    begin = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    received = await asyncio.wait_for(reader.read(-1), 10)
    elapsed = time.monotonic() - begin
    writer.close()
    assert received == data
    assert 0.4 <= elapsed < 5.0
    [record] = await s.recorded(1)
    assert record.faults == ["thin"]
