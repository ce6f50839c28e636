"""Upstreams that misbehave: each gives the client a clean, attributed error (or a clean cut
when the status line is gone already), is recorded, and leaves the engine serving."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, free_port, listen_url
from tests.hardening.raw_upstream import RawUpstream, read_head, rst
from tests.upstreams import HttpUpstream

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: bad
    timeout: 1s
    targets:
      bad: http://127.0.0.1:{bad}
      good: {good}
"""


@pytest.fixture
async def raw() -> AsyncIterator[RawUpstream]:
    server = await RawUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream):
    engine = await make_engine(PROFILE.format(bad=raw.port, good=upstream.url))
    return engine, listen_url(engine, "api")


def last_record(engine: Engine, target: str = "bad"):  # type: ignore[no-untyped-def]
    return [e for e in engine.store.all() if e.target == target][-1]


async def still_serving(url: str) -> None:
    """The engine answers the next request, on the bad target's neighbour."""
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/next", headers={"X-Devamb-Target": "good"})
        assert resp.status == 200 and (await resp.json())["upstream"] == "up"


async def attributed_error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.headers["x-devamb-error"] == code
    body = json.loads(await resp.read())
    assert body["error"] == code and body["service"] == "api" and body["target"] == "bad"
    assert body["reason"]
    return body


async def test_refused_connection_is_502_connect_failed(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(bad=free_port(), good=upstream.url))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        body = await attributed_error(resp, 502, "connect-failed")
    assert "cannot connect" in body["reason"]
    assert last_record(engine).status == 502 and last_record(engine).error
    await still_serving(url)


async def test_reset_before_headers_is_502(proxy, raw: RawUpstream) -> None:
    _engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        rst(writer)

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        await attributed_error(resp, 502, "upstream-closed")
    await still_serving(url)


async def test_reset_mid_response_cuts_the_client(proxy, raw: RawUpstream) -> None:
    engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        await asyncio.sleep(0.1)
        rst(writer)

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        assert resp.status == 200  # the status line had gone before the upstream broke
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    record = last_record(engine)
    assert record.error and "broke off" in record.error
    assert record.bytes_out == 1000
    await still_serving(url)


async def test_stall_before_headers_is_504_after_the_timeout(proxy, raw: RawUpstream) -> None:
    _engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        await reader.read()  # silent until the engine closes the connection

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        body = await attributed_error(resp, 504, "timeout")
    assert "1s" in body["reason"]
    await asyncio.sleep(0.05)
    assert not raw.open  # the stalled upstream connection was closed, not kept
    await still_serving(url)


async def test_stall_mid_body_then_client_gives_up(proxy, raw: RawUpstream) -> None:
    """No byte moves; other requests are served meanwhile; when the client gives up the
    upstream connection is closed and the exchange recorded with an error."""
    engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 500)
        await writer.drain()
        await reader.read()  # silent until the engine closes the connection

    raw.handler = handler
    reader, writer = await asyncio.open_connection(*engine.services["api"].bound)
    writer.write(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert len(await asyncio.wait_for(reader.readexactly(500), 5)) == 500
    await still_serving(url)  # the stall holds nobody else up
    assert len(raw.open) == 1
    writer.transport.abort()  # the client gives up
    for _ in range(100):
        if not raw.open and engine.store.all()[-2:][0].target == "bad":
            break
        await asyncio.sleep(0.02)
    assert not raw.open  # the upstream connection was closed, not leaked
    record = last_record(engine)
    assert record.error and record.bytes_out == 500
    await still_serving(url)


@pytest.mark.parametrize(
    "answer",
    [b"HELLO THERE\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\x00\xff" * 100,
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"],
    ids=["not-http", "bad-status", "binary", "two-lengths"],
)
async def test_garbage_is_502_bad_response(proxy, raw: RawUpstream, answer: bytes) -> None:
    engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(1)

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        body = await attributed_error(resp, 502, "bad-response")
    assert "invalid response" in body["reason"]
    assert last_record(engine).status == 502
    await still_serving(url)


async def test_an_unasked_protocol_switch_is_502_bad_response(proxy, raw: RawUpstream) -> None:
    """A 101 to a request that asked for no upgrade (found by test_fuzz_response.py): a clean
    502, not an unhandled parser exception on the event loop."""
    engine, url = proxy
    errors: list[dict] = []  # type: ignore[type-arg]
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        body = await attributed_error(resp, 502, "bad-response")
    assert "switched protocols" in body["reason"]
    assert last_record(engine).status == 502
    assert not errors, errors
    await still_serving(url)


async def test_close_before_headers_is_502(proxy, raw: RawUpstream) -> None:
    _engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 O")  # half a status line, then FIN

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        await attributed_error(resp, 502, "upstream-closed")
        resp = await client.post(url + "/x", data=b"a body")
        await attributed_error(resp, 502, "upstream-closed")
    await still_serving(url)


async def test_informational_responses_then_the_real_one(proxy, raw: RawUpstream) -> None:
    engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 201 Created\r\nX-Real: yes\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        for _ in range(3):  # and again on the same kept-alive upstream connection
            resp = await client.get(url + "/x")
            assert resp.status == 201 and await resp.read() == b"hello"
            assert resp.headers["X-Real"] == "yes" and "Link" not in resp.headers
    assert last_record(engine).status == 201 and last_record(engine).error is None
    assert raw.accepted == 1
    await still_serving(url)


async def test_content_length_longer_than_sent_cuts_the_client(proxy, raw: RawUpstream) -> None:
    engine, url = proxy

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
        await writer.drain()  # then FIN: 90 bytes short

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/x")
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    record = last_record(engine)
    assert record.error and record.bytes_out == 10
    await still_serving(url)


@pytest.mark.parametrize("together", [True, False], ids=["same-write", "later-while-idle"])
async def test_content_length_shorter_than_sent(proxy, raw: RawUpstream, together: bool) -> None:
    """Bytes past the declared length are not a response to anyone's next request."""
    engine, url = proxy
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: 1\r\n\r\nsmuggled"

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        if raw.accepted > 1:  # a later connection: honest from the start
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        elif together:
            writer.write(first + smuggled)
        else:
            writer.write(first)
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(smuggled)
        await writer.drain()
        while True:  # later requests on this connection get an honest answer
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
            await writer.drain()

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + "/one")
        assert await resp.read() == b"hello"
        await asyncio.sleep(0.4)
        for _ in range(3):
            resp = await client.get(url + "/two")
            assert "X-Smuggled" not in resp.headers
            assert await resp.read() == b"second"
    first = next(e for e in engine.store.all() if e.path == "/one")
    assert first.bytes_out == 5
    await still_serving(url)


async def test_http10_close_delimited_body_passes_intact(proxy, raw: RawUpstream) -> None:
    engine, url = proxy
    body = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for i in range(0, len(body), 65536):
            writer.write(body[i : i + 65536])
            await writer.drain()
        # the end of the connection is the end of the body

    raw.handler = handler
    async with aiohttp.ClientSession() as client:
        for _ in range(2):
            resp = await client.get(url + "/x")
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).digest() == hashlib.sha256(body).digest()
    record = last_record(engine)
    assert record.error is None and record.bytes_out == len(body)
    await still_serving(url)


async def test_every_misbehaviour_leaves_no_upstream_connection_behind(
    proxy, raw: RawUpstream
) -> None:
    """A burst of broken answers: afterwards the engine holds no connection to the upstream."""
    _engine, url = proxy
    answers = [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", b""]

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(answers[raw.accepted % len(answers)])
        await writer.drain()
        await asyncio.sleep(0.5)

    raw.handler = handler
    async with aiohttp.ClientSession() as client:

        async def one() -> None:
            with contextlib.suppress(aiohttp.ClientError):
                resp = await client.get(url + "/x")
                await resp.read()

        await asyncio.gather(*(one() for _ in range(60)))
    for _ in range(100):
        if not raw.open:
            break
        await asyncio.sleep(0.02)
    assert not raw.open
    await still_serving(url)
