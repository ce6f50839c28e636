"""Limits on the upstream side: the response head is bounded like the request head, a status
outside 1xx to 5xx is refused, and the response timeout starts when the request has been sent, so
a slow upload is not cut while it moves, while a stalled one ends cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, listen_url
from tests.hardening.raw_upstream import RawUpstream, all_closed, read_body, read_head
from tests.upstreams import HttpUpstream


@pytest.fixture
async def raw() -> AsyncIterator[RawUpstream]:
    server = await RawUpstream().start()
    yield server
    await server.stop()


def profile(port: int, good: str = "http://127.0.0.1:1", extra: str = "") -> str:
    return f"""
    version: 1
    services:
      api:
        listen: 0
        timeout: 1s
        target: raw
        targets: {{raw: "http://127.0.0.1:{port}", good: "{good}"}}
        {extra}
    """


def records(engine: Engine, path: str) -> list:  # type: ignore[type-arg]
    return [e for e in engine.store.all() if e.path == path]


async def still_serving(url: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(
        url + "/next", headers={"X-Devamb-Target": "good"}
    ) as resp:
        assert resp.status == 200 and (await resp.json())["upstream"] == "up"


# -- the response head -------------------------------------------------------------------------


def headers_of(count: int, size: int) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(count))


HUGE_HEADS = {
    "20000-headers-of-1KB": headers_of(20_000, 1000),
    "101-headers": headers_of(101, 10),
    "10-headers-of-7000-bytes": headers_of(10, 7000),
    "one-9KB-header": headers_of(1, 9 * 1024),
    "one-header-growing-to-1MB": b"X-Big: " + b"v" * 1024 * 1024 + b"\r\n",
}


@pytest.mark.parametrize("fields", HUGE_HEADS.values(), ids=HUGE_HEADS.keys())
async def test_an_oversized_response_head_is_502_bad_response(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream, fields: bytes
) -> None:
    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        head = b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok"
        for i in range(0, len(head), 64 * 1024):  # a head that arrives read by read
            writer.write(head[i : i + 64 * 1024])
            await writer.drain()
        await reader.read()

    raw.handler = handler
    engine = await make_engine(profile(raw.port, upstream.url))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client, client.get(url + "/big") as resp:
        assert resp.status == 502, resp.headers
        assert resp.headers["x-devamb-error"] == "bad-response"
        body = json.loads(await resp.read())
    assert "upstream" in body["reason"] and ("KiB" in body["reason"] or "100" in body["reason"])
    [record] = records(engine, "/big")
    assert record.status == 502 and record.error == body["reason"]
    assert await all_closed(raw)  # the connection was dropped, not kept for reuse
    await still_serving(url)


async def test_a_head_just_within_the_limits_passes(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream
) -> None:
    fields = headers_of(99, 600)  # 99 headers, ~61 KB in all, each line well under 8 KiB

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\n" + headers_of(50, 600) + b"\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    raw.handler = handler
    engine = await make_engine(profile(raw.port, upstream.url))
    async with aiohttp.ClientSession() as client, client.get(
        listen_url(engine, "api") + "/ok"
    ) as resp:
        assert resp.status == 200 and await resp.read() == b"ok"
        assert resp.headers["X-H98"] == "v" * 600


@pytest.mark.parametrize("trailers", [3, 5000])
async def test_trailers_are_bounded_like_headers(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream, trailers: int
) -> None:
    """Trailers are not relayed; a few pass unnoticed, thousands break the body off."""
    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                     + headers_of(trailers, 100) + b"\r\n")
        await writer.drain()
        await reader.read()

    raw.handler = handler
    engine = await make_engine(profile(raw.port, upstream.url))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client, client.get(url + "/trailers") as resp:
        assert resp.status == 200  # the head went before the trailers came
        if trailers < 100:
            assert await resp.read() == b"hello"
        else:
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    [record] = records(engine, "/trailers")
    assert (record.error is None) == (trailers < 100), record.error
    await still_serving(url)


@pytest.mark.parametrize("status", [b"999", b"600", b"099", b"000"])
async def test_a_status_outside_1xx_to_5xx_is_502_bad_response(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream, status: bytes
) -> None:
    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        writer.write(b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    raw.handler = handler
    engine = await make_engine(profile(raw.port, upstream.url))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client, client.get(url + "/odd") as resp:
        assert resp.status == 502
        assert resp.headers["x-devamb-error"] == "bad-response"
    [record] = records(engine, "/odd")
    assert record.status == 502 and record.error
    await still_serving(url)


# -- slow uploads --------------------------------------------------------------------------------


async def answer_after_body(reader, writer) -> None:  # type: ignore[no-untyped-def]
    """Read the whole request, then answer with the body's size."""
    head = await read_head(reader)
    body = await read_body(reader, head)
    text = b"%d" % len(body)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
    await writer.drain()
    await reader.read()


async def response_of(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


# A PUT with retries is read whole first (so that a retry can resend it); a POST streams.
RETRIES = {"post": ("", b"POST"), "put-with-retries": ("retries: {attempts: 2}", b"PUT")}
TRICKLES = {
    "content-length": (b"Content-Length: 10\r\n", [b"%d" % i for i in range(10)]),
    "chunked": (b"Transfer-Encoding: chunked\r\n",
                [b"1\r\n%d\r\n" % i for i in range(10)] + [b"0\r\n\r\n"]),
}


@pytest.mark.parametrize("framing", TRICKLES.values(), ids=TRICKLES.keys())
@pytest.mark.parametrize("policy", RETRIES.values(), ids=RETRIES.keys())
async def test_a_body_trickled_for_longer_than_the_timeout_gets_through(
    make_engine: EngineFactory, raw: RawUpstream, policy: tuple[str, bytes],
    framing: tuple[bytes, list[bytes]],
) -> None:
    """timeout: 1s, a body sent a piece every 0.3 s for 3 s: it moves, so it is not cut."""
    raw.handler = answer_after_body
    retries, method = policy
    engine = await make_engine(profile(raw.port, extra=retries))
    header, pieces = framing
    reader, writer = await asyncio.open_connection(*engine.services["api"].bound)
    writer.write(method + b" /upload HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    for piece in pieces:
        await asyncio.sleep(0.3)
        writer.write(piece)
        await writer.drain()
    head, body = await response_of(reader)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == b"10"
    writer.close()
    [record] = records(engine, "/upload")
    assert record.status == 200 and record.error is None and record.bytes_in == 10


@pytest.mark.parametrize("policy", RETRIES.values(), ids=RETRIES.keys())
async def test_a_stalled_upload_is_408_and_the_engine_serves_on(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream,
    policy: tuple[str, bytes],
) -> None:
    raw.handler = answer_after_body
    retries, method = policy
    engine = await make_engine(profile(raw.port, upstream.url, extra=retries))
    reader, writer = await asyncio.open_connection(*engine.services["api"].bound)
    writer.write(method + b" /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123")
    head, body = await response_of(reader)  # after the 1 s idle timeout, not never
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"x-devamb-error: request-timeout" in head.lower()
    assert json.loads(body)["error"] == "request-timeout"
    assert b"connection: close" in head.lower()  # closed at once, as nginx does: no linger
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.transport.abort()
    [record] = records(engine, "/stall")
    assert record.status == 408 and "no request body bytes" in (record.error or "")
    assert await all_closed(raw)  # the half-sent upstream request was dropped
    await still_serving(listen_url(engine, "api"))


async def test_an_upstream_that_stops_reading_the_body_is_504(
    make_engine: EngineFactory, raw: RawUpstream, upstream: HttpUpstream
) -> None:
    done = asyncio.Event()

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_head(reader)
        await done.wait()  # reads none of the body

    raw.handler = handler
    engine = await make_engine(profile(raw.port, upstream.url))
    reader, writer = await asyncio.open_connection(*engine.services["api"].bound)
    size = 64 * 1024 * 1024
    writer.write(b"POST /deaf HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)

    async def send() -> None:
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    sending = asyncio.create_task(send())
    try:
        head, body = await response_of(reader)
    finally:
        sending.cancel()
        writer.transport.abort()
        done.set()
    assert head.startswith(b"HTTP/1.1 504"), head
    assert "took no request body bytes" in json.loads(body)["reason"]
    [record] = records(engine, "/deaf")
    assert record.status == 504 and record.error
    await still_serving(listen_url(engine, "api"))
