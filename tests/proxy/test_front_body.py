"""A request body framed by Content-Length that comes in several reads is counted off the
reads instead of parsed (proxy/front.py, as upstream.py does for responses): the bytes the
upstream gets, the requests that follow on the connection and a client that stops halfway must
be as the parser would have had them.

The client writes each request in pieces, with a pause between them so that they arrive as
separate reads; the upstream is a real aiohttp server that answers with the body's length and
digest.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.conftest import EngineFactory

BODY = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture
async def digesting() -> AsyncIterator[str]:
    """An upstream answering every request with its method, path, body length and SHA-256."""
    seen: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(len(body))
        text = f"{request.method} {request.path} {len(body)} {hashlib.sha256(body).hexdigest()}"
        return web.Response(text=text)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def proxy(make_engine: EngineFactory, upstream: str) -> tuple[str, int]:
    engine = await make_engine(
        f"services:\n  api:\n    listen: 0\n    targets: {{up: \"{upstream}\"}}\n")
    bound = engine.services["api"].bound
    assert bound is not None
    return bound


def post(path: str, body: bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(),
                                                                             len(body)) + body)


def expected(path: str, body: bytes) -> bytes:
    return f"POST {path} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return await asyncio.wait_for(reader.readexactly(length), 10)


async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, *cuts: int) -> None:
    for start, end in zip((0, *cuts), (*cuts, len(data)), strict=True):
        writer.write(data[start:end])
        await writer.drain()
        await asyncio.sleep(0.02)  # a read of its own


async def test_a_body_in_many_reads_arrives_whole_and_the_connection_goes_on(
    make_engine: EngineFactory, digesting: str
) -> None:
    host, port = await proxy(make_engine, digesting)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        first = post("/one", BODY)
        await send_in_pieces(writer, first, 60, 70_000, 150_000, 200_000)
        assert await read_answer(reader) == expected("/one", BODY)
        # the body's last piece and the next request in one write (pipelined)
        second, third = post("/two", BODY), post("/three", b"small")
        await send_in_pieces(writer, second + third, 100, len(second) - 10)
        assert await read_answer(reader) == expected("/two", BODY)
        assert await read_answer(reader) == expected("/three", b"small")
        writer.write(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n")  # and a bodiless one after
        assert (await read_answer(reader)).startswith(b"GET /four 0 ")
    finally:
        writer.close()


async def test_bytes_after_a_counted_body_are_parsed_as_the_next_request(
    make_engine: EngineFactory, digesting: str
) -> None:
    host, port = await proxy(make_engine, digesting)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await send_in_pieces(writer, post("/one", BODY) + b"NOT HTTP\r\n\r\n", 100, 1000)
        assert await read_answer(reader) == expected("/one", BODY)
        refused = await asyncio.wait_for(reader.read(), 10)  # answered, then closed
        assert refused.startswith(b"HTTP/1.1 400"), refused[:100]
    finally:
        writer.close()


async def test_a_client_that_stops_inside_a_counted_body_breaks_only_its_exchange(
    make_engine: EngineFactory, digesting: str
) -> None:
    host, port = await proxy(make_engine, digesting)
    reader, writer = await asyncio.open_connection(host, port)
    await send_in_pieces(writer, post("/cut", BODY)[:100_000], 100, 1000)
    writer.close()
    await writer.wait_closed()
    reader, writer = await asyncio.open_connection(host, port)  # the engine serves on
    try:
        await send_in_pieces(writer, post("/next", BODY), 100, 1000)
        assert await read_answer(reader) == expected("/next", BODY)
    finally:
        writer.close()
