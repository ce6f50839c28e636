"""The HTTP reverse proxy against real upstreams: streaming, headers, errors, switching."""

from __future__ import annotations

import asyncio
import hashlib
import re

import aiohttp
import pytest

from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream, pattern_digest

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: a
    timeout: {timeout}
    targets:
      a: {a}
      b: {b}
      dead: http://127.0.0.1:1
      debug: echo
      withheaders:
        url: {a}/prefix
        headers: {{X-Injected: "yes", Authorization: "Bearer ${{TEST_TOKEN:-tok3n-secret}}"}}
"""


@pytest.fixture
async def proxy(make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream):
    engine = await make_engine(PROFILE.format(a=upstream.url, b=upstream2.url, timeout="1s"))
    return engine, listen_url(engine, "api")


async def test_get_reaches_upstream_with_forwarding_headers(proxy) -> None:
    engine, url = proxy
    async with aiohttp.ClientSession() as client:
        resp = await client.get(
            f"{url}/hello?x=1",
            headers={"Connection": "keep-alive, X-Hop", "X-Hop": "drop me", "X-Keep": "1"},
        )
        data = await resp.json()
    headers = {k.lower(): v for k, v in data["headers"]}
    assert resp.status == 200 and data["upstream"] == "up" and data["path"] == "/hello?x=1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == url.removeprefix("http://")
    assert re.fullmatch(r"1\.1 devamb-[0-9a-f]{8}", headers["via"])  # this listener's own
    assert headers["host"] == data_host(engine)
    assert "x-hop" not in headers and headers["x-keep"] == "1"
    assert "user-agent" in headers  # the client's own, passed through, not aiohttp's


def data_host(engine) -> str:  # type: ignore[no-untyped-def]
    url = engine.services["api"].targets["a"].spec.url
    return url.removeprefix("http://")


async def test_request_body_streams_up_intact(proxy) -> None:
    _, url = proxy
    body = bytes(range(256)) * 40_000  # ~10 MB

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    async with aiohttp.ClientSession() as client:
        resp = await client.post(f"{url}/upload", data=chunks())  # chunked upload
        data = await resp.json()
        resp2 = await client.put(f"{url}/upload", data=body)  # with Content-Length
        data2 = await resp2.json()
    digest = hashlib.sha256(body).hexdigest()
    assert data["body_sha256"] == digest and data["body_size"] == len(body)
    assert data2["body_sha256"] == digest


async def test_large_download_streams_intact(proxy) -> None:
    _, url = proxy
    total = 64 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/bytes/{total}")
        async for chunk in resp.content.iter_any():
            digest.update(chunk)
    assert digest.hexdigest() == pattern_digest(total)


async def test_sse_events_arrive_before_the_upstream_ends(proxy, upstream: HttpUpstream) -> None:
    _, url = proxy
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/sse?n=3")
        assert resp.headers["Content-Type"] == "text/event-stream"
        for i in range(3):
            line = await asyncio.wait_for(resp.content.readline(), 5)
            assert line == f"data: event {i}\n".encode()
            await resp.content.readline()
            upstream.app["sse_gate"].set()  # only now may the upstream send the next one


async def test_websocket_passes_both_ways(proxy) -> None:
    engine, url = proxy
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(f"{url}/ws", protocols=("chat",)) as ws,
    ):
        assert ws.protocol == "chat"
        await ws.send_str("hi")
        assert (await ws.receive_str(timeout=5)) == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive_bytes(timeout=5)) == b"cba"
    await asyncio.sleep(0.05)
    record = engine.store.recent(1)[0]
    assert record.status == 101 and record.bytes_in == 5 and record.bytes_out == 10


async def test_dead_upstream_gives_502_and_engine_keeps_serving(proxy) -> None:
    engine, url = proxy
    await engine.switch("api", "dead")
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/x")
        body = await resp.json()
        assert resp.status == 502
        assert resp.headers["x-devamb-error"] == "connect-failed"
        assert body["service"] == "api" and body["target"] == "dead"
        await engine.switch("api", "a")
        assert (await client.get(f"{url}/x")).status == 200
    assert engine.store.recent(2)[0].error.startswith("cannot connect")


async def test_slow_upstream_gives_504(proxy) -> None:
    _, url = proxy
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/slow/3")
        assert resp.status == 504
        assert resp.headers["x-devamb-error"] == "timeout"
        assert (await resp.json())["reason"] == "no response within 1s"


async def test_switch_during_download_keeps_the_download(proxy, upstream: HttpUpstream) -> None:
    engine, url = proxy
    total = 4 * 1024 * 1024
    digest = hashlib.sha256()
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/bytes/{total}?delay=0.005")
        first = await resp.content.read(65536)
        digest.update(first)
        await engine.switch("api", "b")
        after = await (await client.get(f"{url}/who")).json()
        async for chunk in resp.content.iter_any():
            digest.update(chunk)
    assert after["upstream"] == "up2"
    assert digest.hexdigest() == pattern_digest(total)


async def test_target_override_header_routes_one_request(proxy) -> None:
    _, url = proxy
    async with aiohttp.ClientSession() as client:
        one = await (await client.get(f"{url}/x", headers={"X-Devamb-Target": "b"})).json()
        usual = await (await client.get(f"{url}/x")).json()
        bad = await client.get(f"{url}/x", headers={"X-Devamb-Target": "nope"})
    assert one["upstream"] == "up2" and usual["upstream"] == "up"
    assert "x-devamb-target" not in {k.lower() for k, _ in one["headers"]}
    assert bad.status == 400 and "known: a, b" in (await bad.json())["reason"]


async def test_target_headers_and_prefix_are_applied(proxy) -> None:
    engine, url = proxy
    await engine.switch("api", "withheaders")
    async with aiohttp.ClientSession() as client:
        data = await (await client.get(f"{url}/v1/items")).json()
    headers = {k.lower(): v for k, v in data["headers"]}
    assert data["path"] == "/prefix/v1/items"
    assert headers["x-injected"] == "yes" and headers["authorization"] == "Bearer tok3n-secret"


async def test_cookies_are_not_kept_by_the_proxy(proxy) -> None:
    _, url = proxy
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        resp = await client.get(f"{url}/cookie")
        assert "session=abc" in resp.headers["Set-Cookie"]
        data = await (await client.get(f"{url}/after")).json()
    assert "cookie" not in {k.lower() for k, _ in data["headers"]}


async def test_echo_target_describes_the_request(proxy) -> None:
    engine, url = proxy
    await engine.switch("api", "debug")
    async with aiohttp.ClientSession() as client:
        data = await (await client.post(f"{url}/p?q=1", data=b"12345")).json()
    assert data == data | {
        "service": "api",
        "target": "debug",
        "method": "POST",
        "path": "/p",
        "query": {"q": "1"},
        "body_size": 5,
    }


async def test_exchanges_are_recorded_and_counted(proxy) -> None:
    engine, url = proxy
    async with aiohttp.ClientSession() as client:
        for _ in range(3):
            await (await client.get(f"{url}/status/503")).read()
    records = await engine.exchanges(10)
    assert [r["status"] for r in records] == [503, 503, 503]
    assert records[0]["method"] == "GET" and records[0]["path"] == "/status/503"
    stats = (await engine.status())["services"][0]["stats"]
    assert stats["requests"] == 3 and stats["errors"] == 3 and stats["p50_ms"] is not None
