"""abort: a status (and body, headers) without the upstream ever seeing the request."""

from __future__ import annotations

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from tests.faults.conftest import SetupFactory


async def test_default_abort_is_a_503_with_a_json_body(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="boom", kind="abort")
    async with aiohttp.ClientSession() as client, client.post(
        s.url + "/charge", data=b"x" * 1000
    ) as r:
        assert r.status == 503
        assert r.headers["x-devamb-fault"] == "abort"
        assert await r.json() == {"error": "injected", "fault": "abort", "status": 503}
    assert s.http.seen == []
    [record] = await s.recorded(1)
    assert record.faults == ["boom"] and record.status == 503


async def test_status_body_and_headers_as_given(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="teapot", kind="abort", status=418, body="short and stout",
                headers={"Retry-After": "7", "X-Why": "fault"})
    async with aiohttp.ClientSession() as client, client.get(s.url + "/x") as r:
        assert r.status == 418
        assert await r.text() == "short and stout"
        assert r.headers["Retry-After"] == "7" and r.headers["X-Why"] == "fault"
    assert s.http.seen == []


async def test_a_content_type_header_replaces_the_default(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="json", kind="abort", status=500, body='{"code": "E42"}',
                headers={"Content-Type": "application/problem+json"})
    async with aiohttp.ClientSession() as client, client.get(s.url + "/x") as r:
        assert r.status == 500
        assert r.headers["Content-Type"] == "application/problem+json"
        assert await r.text() == '{"code": "E42"}'
    assert s.http.seen == []


async def test_abort_only_where_it_matches(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="boom", kind="abort", status=502,
                match={"path": "/charge*", "method": "POST"})
    async with aiohttp.ClientSession() as client:
        assert (await client.post(s.url + "/charges/1")).status == 502
        assert (await client.get(s.url + "/charges/1")).status == 200
        assert (await client.post(s.url + "/refund")).status == 200
    assert s.http.seen == [("GET", "/charges/1"), ("POST", "/refund")]
    assert [e.faults for e in await s.recorded(3)] == [["boom"], [], []]


async def test_header_driven_abort(setup: SetupFactory) -> None:
    s = await setup(header_faults=True)
    async with aiohttp.ClientSession() as client:
        r = await client.get(s.url + "/x", headers={"x-devamb-fault-abort": "504"})
        assert r.status == 504
        r = await client.get(s.url + "/x", headers={"x-devamb-fault-abort": "nope"})
        assert r.status == 200
    assert len(s.http.seen) == 1
    first, second = await s.recorded(2)
    assert first.faults == ["header:abort"] and second.faults == []


async def test_abort_is_an_http_fault(setup: SetupFactory) -> None:
    s = await setup()
    with pytest.raises(ControlError, match="faults apply to http, http2 and grpc services only"):
        await s.add("raw", kind="abort")
    with pytest.raises(ControlError, match=r"status: 99 is out of range 200\.\.599"):
        await s.add("api", kind="abort", status=99)


async def test_the_abort_event_and_counters_carry_the_status(setup: SetupFactory) -> None:
    s = await setup()
    await s.add("api", name="boom", kind="abort", status=503)
    events = s.engine.bus.subscribe()
    async with aiohttp.ClientSession() as client:
        assert (await client.get(s.url + "/x")).status == 503
    await s.recorded(1)
    event = await events.get()
    while event is not None and event.TYPE != "exchange":
        event = await events.get()
    events.close()
    assert event is not None and event.exchange["faults"] == ["boom"]
    assert s.engine.services["api"].counters.snapshot()["errors"] == 1
    assert event.exchange.get("status") == 503
