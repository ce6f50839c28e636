"""Live changes through the real control API client over the unix socket, connections open."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp
import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import ControlError
from devamb.control.server import ControlServer
from tests.faults.conftest import Setup, SetupFactory
from tests.upstreams import pattern_digest


@pytest.fixture
async def live(setup: SetupFactory, tmp_path: Path):
    s = await setup(fake=False)
    server = ControlServer(s.engine, tmp_path / ".devamb" / "engine.sock")
    await server.start()
    client = ControlClient(server.socket_path)
    yield s, client
    await client.close()
    await server.stop()


async def test_add_toggle_remove_over_the_socket(live) -> None:
    s, api = live
    added = await api.add_fault("api", {"kind": "abort", "status": 503, "probability": 1})
    assert added["name"] == "abort" and added["enabled"] is True
    again = await api.add_fault("api", {"kind": "abort", "status": 500})
    assert again["name"] != "abort"  # a free name, numbered
    listed = await api.faults("api")
    assert [f["name"] for f in listed["api"]] == ["abort", again["name"]]
    async with aiohttp.ClientSession() as http:
        assert (await http.get(s.url + "/x")).status == 503
        await api.set_fault("api", "abort", False)
        await api.set_fault("api", again["name"], False)
        assert (await http.get(s.url + "/x")).status == 200
        await api.set_fault("api", "abort", True)
        assert (await http.get(s.url + "/x")).status == 503
        await api.remove_fault("api", "abort")
        assert (await http.get(s.url + "/x")).status == 200
        await api.clear_faults()
    assert await api.faults() == {"api": [], "raw": []}


async def test_errors_name_what_is_wrong(live) -> None:
    _, api = live
    with pytest.raises(ControlError, match="service 'api' has no fault 'nope'; known: none"):
        await api.set_fault("api", "nope", True)
    with pytest.raises(ControlError, match="'explode' is not one of latency, abort"):
        await api.add_fault("api", {"kind": "explode"})
    with pytest.raises(ControlError, match=r"probability: 2 is out of range 0\.\.1"):
        await api.add_fault("api", {"kind": "latency", "delay": "1s", "probability": 2})
    with pytest.raises(ControlError, match="no service 'web'"):
        await api.add_fault("web", {"kind": "latency", "delay": "1s"})


async def test_changes_do_not_disturb_a_response_in_flight(live) -> None:
    s, api = live
    await api.add_fault("api", {"name": "thin", "kind": "bandwidth", "rate": "512KiB"})
    async with aiohttp.ClientSession() as http, http.get(s.url + "/bytes/262144") as r:
        first = await r.content.readexactly(32768)
        await api.add_fault("api", {"name": "boom", "kind": "abort"})  # the next ones fail
        await api.remove_fault("api", "thin")
        rest = await r.read()
    digest = hashlib.sha256(first + rest).hexdigest()
    assert digest == pattern_digest(262144)  # the stream kept its faults, nothing dropped
    async with aiohttp.ClientSession() as http:
        assert (await http.get(s.url + "/x")).status == 503
    records = await s.recorded(2)
    assert records[0].faults == ["thin"] and records[0].error is None
    assert records[1].faults == ["boom"]


async def test_tcp_connections_stay_open_across_changes(live) -> None:
    s, api = live
    reader, writer = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    writer.write(b"one")
    assert await reader.readexactly(3) == b"one"
    await api.add_fault("raw", {"name": "gone", "kind": "down"})
    writer.write(b"two")  # the open connection is not affected
    assert await reader.readexactly(3) == b"two"
    with pytest.raises(ConnectionResetError):  # a new one is refused
        r2, w2 = await asyncio.open_connection("127.0.0.1", s.tcp_port)
        w2.write(b"x")
        await asyncio.wait_for(r2.read(10), 5)
    await api.set_fault("raw", "gone", False)
    writer.write(b"three")
    assert await reader.readexactly(5) == b"three"
    r3, w3 = await asyncio.open_connection("127.0.0.1", s.tcp_port)
    w3.write(b"four")
    assert await r3.readexactly(4) == b"four"
    w3.close()
    writer.close()


async def test_fault_changes_are_published(live, tmp_path: Path) -> None:
    s, api = live
    events = api.events()
    seen: list[dict] = []

    async def read() -> None:
        async for event in events:
            seen.append(event)
            if event["type"] == "faults" and not event.get("faults"):
                return

    reader = asyncio.create_task(read())
    while not s.engine.bus.has_subscribers:
        await asyncio.sleep(0.01)
    await api.add_fault("api", {"name": "slow", "kind": "latency", "delay": "10ms"})
    await api.remove_fault("api", "slow")
    await asyncio.wait_for(reader, 5)
    changes = [e for e in seen if e["type"] == "faults"]
    assert [[f["name"] for f in e["faults"]] for e in changes] == [["slow"], []]


async def test_status_lists_faults_and_scenarios(live) -> None:
    _, api = live
    await api.add_fault("api", {"name": "slow", "kind": "latency", "delay": "10ms",
                                "match": {"path": "/a*"}})
    status = await api.status()
    [svc] = [x for x in status["services"] if x["name"] == "api"]
    [fault] = svc["faults"]
    assert fault["name"] == "slow" and fault["kind"] == "latency" and fault["match"] == "/a*"
    assert fault["params"]["delay"] == 0.01
    assert await api.scenarios() == []


async def _held(s: Setup, url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status


async def test_a_held_request_goes_on_when_the_api_turns_the_fault_off(live) -> None:
    s, api = live
    await api.add_fault("api", {"name": "hole", "kind": "timeout"})
    task = asyncio.create_task(_held(s, s.url + "/x"))
    await asyncio.sleep(0.2)
    assert not task.done()
    await api.set_fault("api", "hole", False)
    assert await asyncio.wait_for(task, 5) == 200
