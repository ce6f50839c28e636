"""The control API over a real unix socket, through the real client."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp
import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import ControlError, EngineUnavailable
from tests.conftest import listen_url


async def test_socket_and_folder_are_private(api) -> None:
    _, server, _ = api
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.socket_path.parent.stat().st_mode) == 0o700


async def test_status_switch_and_exchanges(api) -> None:
    engine, _, client = api
    status = await client.status()
    assert status["services"][0]["target"] == "a"
    await client.switch("api", "b")
    assert engine.services["api"].active == "b"
    async with aiohttp.ClientSession() as http:
        await (await http.get(listen_url(engine, "api") + "/x")).read()
    [exchange] = await client.exchanges(10)
    assert exchange["target"] == "b" and exchange["path"] == "/x" and exchange["status"] == 200


async def test_unknown_names_are_refused_with_the_known_ones(api) -> None:
    _, _, client = api
    with pytest.raises(ControlError, match="no service 'nope'; known: api"):
        await client.switch("nope", "a")
    with pytest.raises(ControlError, match="has no target 'c'; known: a, b"):
        await client.switch("api", "c")


async def test_event_stream_delivers_switches_and_exchanges(api) -> None:
    engine, _, client = api
    events = client.events()
    seen: list[dict] = []

    async def read() -> None:
        async for event in events:
            seen.append(event)
            if event["type"] == "exchange":
                return

    reader = asyncio.create_task(read())
    while not engine.bus.has_subscribers:
        await asyncio.sleep(0.01)
    await client.switch("api", "b")
    async with aiohttp.ClientSession() as http:
        await (await http.get(listen_url(engine, "api") + "/y")).read()
    await asyncio.wait_for(reader, 5)
    types = [e["type"] for e in seen if e["type"] != "stats"]
    assert types == ["switched", "exchange"]
    assert seen[-1]["exchange"]["path"] == "/y"


async def test_browsers_are_refused(api) -> None:
    _, server, _ = api
    connector = aiohttp.UnixConnector(path=str(server.socket_path))
    async with aiohttp.ClientSession(connector=connector) as http:
        resp = await http.post("http://localhost/v1/shutdown", headers={"Origin": "http://evil"})
        assert resp.status == 403


async def test_no_engine_is_engine_unavailable(tmp_path: Path) -> None:
    async with ControlClient(tmp_path / "none.sock") as client:
        with pytest.raises(EngineUnavailable) as info:
            await client.status()
    assert info.value.code == 3


async def test_metrics_in_prometheus_text(api) -> None:
    engine, _server, client = api
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            await (await http.get(listen_url(engine, "api") + "/m")).read()
    text = await client.metrics()
    assert 'devamb_requests_total{service="api"} 3' in text
    assert 'devamb_target_requests_total{service="api",target="a"} 3' in text
    assert 'devamb_active_target{service="api",target="a"} 1' in text
    assert 'devamb_request_duration_ms_count{service="api"} 3' in text
    assert 'devamb_request_duration_ms_bucket{service="api",le="+Inf"} 3' in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if not line.startswith("#"):
            _name, value = line.rsplit(" ", 1)
            float(value)
