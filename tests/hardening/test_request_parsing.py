"""Request heads a proxy must not pass on, over real sockets to a real engine: a request line
without HTTP/1.x, a transfer coding other than chunked, a missing or doubled Host, a request
that loops back into its own listener. Each is answered by devamb itself (nothing reaches the
upstream), recorded as an exchange answered by devamb, and the engine keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from devamb.cli.output import print_exchange
from devamb.control.protocol import ControlError
from tests.conftest import EngineFactory, free_port, listen_url
from tests.hardening.conftest import Receiving, still_serving
from tests.upstreams import HttpUpstream
from ui.widgets.traffic_columns import exchange_cells


async def send(host: str, port: int, data: bytes) -> bytes:
    """Send `data` in one write; what comes back until the engine closes (or 5 s pass)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except TimeoutError:
        return b"(kept open) "  # a 200 on a keep-alive connection, for one
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ")[1])


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def answered_by_devamb(engine, status: int) -> dict:  # type: ignore[no-untyped-def]
    """The one exchange devamb answered itself, as `traffic --json` lists it."""
    for _ in range(100):
        records = await engine.exchanges(100, "~t devamb")
        if records:
            break
        await asyncio.sleep(0.02)
    [record] = records
    assert record["target"] == "devamb" and record["status"] == status and record["error"]
    return record


REQUEST_LINES = {
    # a request line without a version (HTTP/0.9's form), with headers after it or not
    "no-version": (b"GET /x\r\nHost: x\r\n\r\n", 400),
    "no-version-no-headers": (b"GET /x\r\n\r\n", 400),
    "method-only": (b"GET\r\n\r\n", 400),
    "http-0.9": (b"GET /x HTTP/0.9\r\nHost: x\r\n\r\n", 400),
    "lowercase-version": (b"GET /x http/1.1\r\nHost: x\r\n\r\n", 400),
    "http-2.0": (b"GET /x HTTP/2.0\r\nHost: x\r\n\r\n", 505),  # nginx: 505
    "http-3.0": (b"GET /x HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    "http-1.2": (b"GET /x HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    # (the HTTP/2 preface itself is served as HTTP/2: tests/service/test_http2_tls.py)
}


@pytest.mark.parametrize(("data", "status"), REQUEST_LINES.values(), ids=REQUEST_LINES.keys())
async def test_request_line_without_http_1x(
    proxy, raw: Receiving, caplog: pytest.LogCaptureFixture, data: bytes, status: int
) -> None:
    engine, host, port = proxy
    answer = await send(host, port, data)
    assert status_of(answer) == status
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert raw.accepted == 0
    record = await answered_by_devamb(engine, status)
    assert record["service"] == "api"
    await still_serving(engine)
    no_traceback(caplog)


TRANSFER_CODINGS = {
    "gzip-then-chunked": b"gzip, chunked",
    "chunked-then-gzip": b"chunked, gzip",
    "identity": b"identity",
    "gzip": b"gzip",
    "two-headers": b"gzip\r\nTransfer-Encoding: chunked",
}


@pytest.mark.parametrize("coding", TRANSFER_CODINGS.values(), ids=TRANSFER_CODINGS.keys())
async def test_transfer_coding_other_than_chunked_is_not_implemented(
    proxy, raw: Receiving, caplog: pytest.LogCaptureFixture, coding: bytes
) -> None:
    """nginx and Envoy answer 501: the body cannot be passed on as what the client meant."""
    engine, host, port = proxy
    answer = await send(
        host, port,
        b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding
        + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert status_of(answer) == 501
    assert raw.accepted == 0
    await answered_by_devamb(engine, 501)
    await still_serving(engine)
    no_traceback(caplog)


async def test_chunked_alone_passes(proxy, raw: Receiving) -> None:
    _engine, host, port = proxy
    answer = await send(
        host, port,
        b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
    )
    assert status_of(answer) == 200 and raw.complete == [b"hello"]


HOSTS = {
    "http-1.1-without-host": (b"GET /h HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two-hosts": (b"GET /h HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "http-1.0-chunked": (
        b"POST /h HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400
    ),
    "http-1.0-without-host": (b"GET /h HTTP/1.0\r\n\r\n", 200),
}


@pytest.mark.parametrize(("data", "status"), HOSTS.values(), ids=HOSTS.keys())
async def test_host_header(
    proxy, raw: Receiving, caplog: pytest.LogCaptureFixture, data: bytes, status: int
) -> None:
    """nginx: 400 for an HTTP/1.1 request without Host, or with two; HTTP/1.0 needs none."""
    engine, host, port = proxy
    answer = await send(host, port, data)
    assert status_of(answer) == status
    if status == 200:
        assert len(raw.complete) == 1
    else:
        assert raw.accepted == 0
        record = await answered_by_devamb(engine, status)
        detail = await engine.exchange(record["id"])  # `devamb show`: what the client sent
        assert [v for k, v in detail["request_headers"] if k.lower() == "host"] == (
            ["a", "b"] if b"Host: b" in data else []
        )
    await still_serving(engine)
    no_traceback(caplog)


async def test_target_pointing_at_its_own_listener(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The request comes back with this listener's own Via: 508 loop-detected at once, instead of
    looping until the head grows past 64 KiB."""
    port = free_port()
    engine = await make_engine(
        f"services:\n  api:\n    listen: {port}\n    targets: {{self: \"http://127.0.0.1:{port}\"}}\n"
    )
    async with aiohttp.ClientSession() as client:
        resp = await client.get(listen_url(engine, "api") + "/loop")
        body = await resp.json()
    assert resp.status == 508 and resp.headers["x-devamb-error"] == "loop-detected"
    assert body["error"] == "loop-detected"
    for _ in range(100):  # the outer exchange finishes just after the client has its answer
        if len(engine.store.all()) >= 2:
            break
        await asyncio.sleep(0.02)
    records = engine.store.all()
    assert len(records) == 2  # one hop, and the hop that came back
    assert sorted(r.target for r in records) == ["devamb", "self"]
    no_traceback(caplog)


async def test_services_chained_in_one_engine_are_not_a_loop(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    """Only a listener's own Via is a loop: front → back → upstream passes (and so would two
    engines chained), while front → back → front is caught."""
    front_port, back_port = free_port(), free_port()
    engine = await make_engine(
        "services:\n"
        f"  front:\n    listen: {front_port}\n    targets: {{back: \"http://127.0.0.1:{back_port}\"}}\n"
        f"  back:\n    listen: {back_port}\n    target: up\n"
        f"    targets: {{up: \"{upstream.url}\", front: \"http://127.0.0.1:{front_port}\"}}\n"
    )
    async with aiohttp.ClientSession() as client:
        resp = await client.get(listen_url(engine, "front") + "/chained")
        data = await resp.json()
        assert resp.status == 200 and data["upstream"] == "up"
        via = dict((k.lower(), v) for k, v in data["headers"])["via"]
        assert via.count("devamb") == 2
        await engine.switch("back", "front")
        resp = await client.get(listen_url(engine, "front") + "/around")
        assert resp.status == 508 and resp.headers["x-devamb-error"] == "loop-detected"


async def test_answers_devamb_gives_itself_are_recorded(
    proxy, raw: Receiving, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown X-Devamb-Target, a target that is not a path, a 431: each is listed by
    `traffic` (target "devamb", the error set), found by the filter language, and printed."""
    engine, host, port = proxy
    async with aiohttp.ClientSession() as client:
        resp = await client.get(
            listen_url(engine, "api") + "/who", headers={"X-Devamb-Target": "nosuch"}
        )
        assert resp.status == 400 and resp.headers["x-devamb-error"] == "unknown-target"
    answer = await send(host, port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400
    big = b"GET /h HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n"
    answer = await send(host, port, big)
    assert status_of(answer) == 431
    for _ in range(100):
        records = await engine.exchanges(100, "~t devamb & ~c 4xx & ~e")
        if len(records) == 3:
            break
        await asyncio.sleep(0.02)
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", "/who", 400), ("OPTIONS", "*", 400), ("GET", "/h", 431)
    ]
    assert "nosuch" in records[0]["error"]
    for record in records:
        print_exchange(record, as_json=True)
        print_exchange(record, as_json=False)
        cells = exchange_cells(record)  # a row of the TUI's traffic list
        assert [text for text, _ in cells[2:6]] == ["devamb", record["method"], record["path"],
                                                    str(record["status"])]
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["target"] for line in lines[::2]] == ["devamb"] * 3
    assert all(" devamb " in line for line in lines[1::2])
    assert await engine.exchanges(100, "~t raw") == []
    for record in records:
        with pytest.raises(ControlError, match="answered by devamb itself"):
            await engine.replay(record["id"])
    assert raw.accepted == 0
