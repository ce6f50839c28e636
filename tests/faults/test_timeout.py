"""timeout: a black hole that holds until the fault is lifted (then goes on) or times out."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.faults.conftest import Setup, SetupFactory
from tests.upstreams import echo_bytes


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.get(url) as r:
        return r.status, await r.text()


async def _still_held(s: Setup, task: asyncio.Task, upstream_seen: int = 0) -> None:
    await asyncio.sleep(0.2)
    assert not task.done()
    assert len(s.http.seen) == upstream_seen


async def test_held_until_the_fault_is_turned_off(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="hole", kind="timeout")
    task = asyncio.create_task(_get(s.url + "/held"))
    await _still_held(s, task)
    await s.engine.set_fault("api", "hole", False)
    status, _ = await asyncio.wait_for(task, 5)
    assert status == 200 and s.http.seen == [("GET", "/held")]
    [record] = await s.recorded(1)
    assert record.faults == ["hole"] and record.error is None


async def test_held_until_the_fault_is_removed_or_cleared(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="hole", kind="timeout")
    first = asyncio.create_task(_get(s.url + "/one"))
    await _still_held(s, first)
    await s.engine.remove_fault("api", "hole")
    assert (await asyncio.wait_for(first, 5))[0] == 200
    await s.add("api", name="hole", kind="timeout")
    second = asyncio.create_task(_get(s.url + "/two"))
    await _still_held(s, second, upstream_seen=1)
    await s.engine.clear_faults("api")
    assert (await asyncio.wait_for(second, 5))[0] == 200


async def test_gives_up_after_its_timeout(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="hole", kind="timeout", timeout="300ms")
    begin = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _get(s.url + "/x")
    assert 0.28 <= time.monotonic() - begin < 3.0
    assert s.http.seen == []
    [record] = await s.recorded(1)
    assert record.faults == ["hole"]
    assert record.error == "fault timeout: held 0.3s, then closed"


async def test_the_last_of_its_times_is_held_too(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="hole", kind="timeout", times=1)
    held = asyncio.create_task(_get(s.url + "/held"))
    await asyncio.sleep(0.1)
    assert (await _get(s.url + "/free"))[0] == 200  # the fault fired once: it is off now
    await _still_held(s, held, upstream_seen=1)
    [fault] = (await s.engine.faults("api"))["api"]
    assert fault["enabled"] is False and fault["fired"] == 1
    await s.engine.remove_fault("api", "hole")
    assert (await asyncio.wait_for(held, 5))[0] == 200


async def test_replacing_the_fault_lets_held_requests_go(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="hole", kind="timeout")
    held = asyncio.create_task(_get(s.url + "/held"))
    await _still_held(s, held)
    await s.add("api", name="hole", kind="latency", delay="1ms")  # same name, another fault
    assert (await asyncio.wait_for(held, 5))[0] == 200


async def test_turning_off_does_not_drop_other_connections(setup: SetupFactory) -> None:
    s = await setup()
    async with aiohttp.ClientSession() as client:
        async with client.get(s.url + "/before") as r:  # a keep-alive connection, open
            assert r.status == 200
        await s.add("api", name="hole", kind="timeout")
        held = asyncio.create_task(_get(s.url + "/held"))
        await _still_held(s, held, upstream_seen=1)
        await s.engine.set_fault("api", "hole", False)
        async with client.get(s.url + "/after") as r:
            assert r.status == 200
        assert (await asyncio.wait_for(held, 5))[0] == 200


async def test_tcp_black_hole_until_turned_off(setup: SetupFactory) -> None:
    connections = []

    async def counting_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await echo_bytes(reader, writer)

    s = await setup(tcp_handler=counting_echo)
    await s.add("raw", name="hole", kind="timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    writer.write(b"swallowed")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.3)
    assert connections == []
    await s.engine.set_fault("raw", "hole", False)
    await asyncio.sleep(0.1)
    writer.write(b"after")
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"after"
    assert connections == [1]
    writer.close()


async def test_tcp_black_hole_closes_after_its_timeout(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("raw", name="hole", kind="timeout", timeout="300ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    begin = time.monotonic()
    writer.write(b"anyone?")
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    assert 0.28 <= time.monotonic() - begin < 3.0
    writer.close()
    [record] = await s.recorded(1)
    assert record.faults == ["hole"] and record.error == "fault timeout: held 0.3s, then closed"
