"""Inspection end to end: real traffic, then filters, details, HAR, curl, replay and diff."""

from __future__ import annotations

import json

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream

SECRET = "s3cr3t-token-value"


@pytest.fixture
async def engine(make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream,
                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_TOKEN", SECRET)
    engine = await make_engine(f"""
    services:
      api:
        listen: 0
        target: a
        targets:
          a:
            url: {upstream.url}
            headers: {{X-Api-Token: "${{API_TOKEN}}"}}
          b: {upstream2.url}
        inspect: {{redact: [password]}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        await (await client.get(f"{url}/items?q=1")).read()
        await (await client.post(f"{url}/login", json={"user": "u", "password": "pw123"},
                                 headers={"Authorization": "Basic dTpwdw=="})).read()
        await (await client.get(f"{url}/status/503")).read()
    return engine


async def test_filters_select_exchanges(engine) -> None:
    assert [e["path"] for e in await engine.exchanges(10, "~m POST")] == ["/login"]
    assert [e["path"] for e in await engine.exchanges(10, "~c 5xx | ~u items")] == [
        "/items?q=1", "/status/503"]
    assert await engine.exchanges(10, "~s nope") == []
    with pytest.raises(ControlError, match=r"(?s)bad filter.*\n  ~c 6xx\n     \^"):
        await engine.exchanges(10, "~c 6xx")


async def test_detail_masks_secrets_and_named_fields(engine) -> None:
    login = (await engine.exchanges(10, "~m POST"))[0]
    detail = await engine.exchange(login["id"])
    assert SECRET not in json.dumps(detail)  # even where the upstream echoes it back
    request_side = json.dumps([detail["request_headers"], detail["request_body"]])
    assert "pw123" not in request_side and "dTpwdw==" not in request_side
    headers = dict(detail["request_headers"])
    assert headers["X-Api-Token"] == "••••" and headers["Authorization"].endswith("••••")
    assert json.loads(detail["request_body"]["text"]) == {"user": "u", "password": "••••"}
    assert detail["status"] == 200 and detail["ttfb_ms"] is not None


async def test_har_export_is_redacted(engine) -> None:
    har = await engine.export_har()
    assert har["log"]["version"] == "1.2" and len(har["log"]["entries"]) == 3
    assert SECRET not in json.dumps(har)
    assert len((await engine.export_har("~c 503"))["log"]["entries"]) == 1


async def test_curl_export_goes_through_the_listener(engine) -> None:
    first = (await engine.exchanges(10))[0]
    command = await engine.export_curl(first["id"])
    assert f"curl '{listen_url(engine, 'api')}/items?q=1'" in command
    assert "X-Api-Token" not in command  # the target injects it again behind the listener


async def test_replay_to_another_target_and_diff(engine) -> None:
    first = (await engine.exchanges(10, "~u items"))[0]
    result = await engine.replay(first["id"], "b", diff=True)
    replayed = result["exchange"]
    assert replayed["replay_of"] == first["id"] and replayed["target"] == "b"
    paths = {d["path"] for d in result["diff"]}
    assert "body.upstream" in paths  # the upstreams name themselves in their JSON answers
    assert not any(p.startswith("headers.date") for p in paths)  # volatile: ignored
    again = await engine.replay(first["id"], diff=True, ignore=["upstream", "headers"])
    assert again["exchange"]["target"] == "a" and again["diff"] == []


async def test_replay_refuses_unknown_ids_and_targets(engine) -> None:
    with pytest.raises(ControlError, match="no exchange 999"):
        await engine.replay(999)
    first = (await engine.exchanges(1))[0]
    with pytest.raises(ControlError, match="has no target 'zzz'"):
        await engine.replay(first["id"], "zzz")


async def test_events_carry_redacted_summaries_and_filter(engine) -> None:
    import asyncio

    seen: list[dict] = []

    async def read() -> None:
        async for event in engine.events("~m DELETE"):
            seen.append(event)
            return

    task = asyncio.create_task(read())
    while not engine.bus.has_subscribers:
        await asyncio.sleep(0.01)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        await (await client.get(f"{url}/skip")).read()
        await (await client.delete(f"{url}/gone?token={SECRET}")).read()
    await asyncio.wait_for(task, 5)
    assert seen[0]["exchange"]["method"] == "DELETE"
    assert SECRET not in json.dumps(seen)


async def test_echo_exchanges_keep_request_headers_and_replay(make_engine: EngineFactory) -> None:
    engine = await make_engine(
        "services:\n  api:\n    listen: 0\n    target: e\n    targets: {e: echo, f: echo}\n"
    )
    async with aiohttp.ClientSession() as client:
        await (await client.get(listen_url(engine, "api") + "/x", headers={"X-A": "1"})).read()
    [first] = await engine.exchanges(1)
    detail = await engine.exchange(first["id"])
    assert ["X-A", "1"] in detail["request_headers"]
    result = await engine.replay(first["id"], "f")
    assert result["exchange"]["target"] == "f" and result["exchange"]["status"] == 200
