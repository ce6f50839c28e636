"""The client-facing front end refuses bad requests cleanly and drops slow-drip clients."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from devamb.proxy import front
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream


@pytest.fixture
async def address(make_engine: EngineFactory, upstream: HttpUpstream):
    engine = await make_engine(f"services:\n  api:\n    listen: 0\n    targets: {{up: "
                               f"\"{upstream.url}\"}}\n")
    host, port = engine.services["api"].bound
    return engine, host, port


async def _raw(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    return answer


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n0\r\n\r\n", b"400"),  # CL + TE: a smuggling attempt
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: five\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    ],
    ids=["huge-header", "huge-url", "not-http", "cl-and-te", "bad-length", "bad-chunk"],
)
async def test_bad_requests_are_refused(address, request_bytes: bytes, status: bytes) -> None:
    engine, host, port = address
    answer = await _raw(host, port, request_bytes)
    assert answer.split(b" ")[1].startswith(status), answer
    async with aiohttp.ClientSession() as client:  # and the engine keeps serving
        assert (await client.get(listen_url(engine, "api") + "/ok")).status == 200


async def test_slow_headers_are_cut_off(address, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, host, port = address
    monkeypatch.setattr(front.FrontProtocol, "header_timeout", 0.3)
    slow = []
    for _ in range(50):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        slow.append((reader, writer))
    async with aiohttp.ClientSession() as client:  # others are served meanwhile
        assert (await client.get(listen_url(engine, "api") + "/ok")).status == 200
    closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 3) for r, _ in slow))
    assert all(data == b"" for data in closed)  # each one closed by the engine
    for _, writer in slow:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response on a kept-alive connection: its status code and its head."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head.split(b" ")[1], head


async def test_a_head_like_the_last_one_is_still_checked_for_its_version(address) -> None:
    """The front end checks a head's fields once while a connection sends the same ones (it
    keeps the last head's): the same fields in an HTTP/1.1 request, where they lack a Host,
    are refused all the same."""
    _, host, port = address
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(2):
            writer.write(b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, head = await _answer(reader)
            assert status == b"200" and b"connection: keep-alive" in head.lower(), head
        writer.write(b"GET /ok HTTP/1.1\r\nConnection: keep-alive\r\n\r\n")
        status, _ = await _answer(reader)
        assert status == b"400"
    finally:
        writer.close()


async def test_fields_that_change_on_a_connection_reach_the_upstream_as_sent(address) -> None:
    """A head like the connection's last one takes what was made from its fields (its lowered
    names, the upstream lines: FrontRequest.names and memo); a head with other fields gets its
    own, and going back to the first fields gives the first lines again."""
    _, host, port = address
    reader, writer = await asyncio.open_connection(host, port)
    heads = [
        b"Host: x\r\nAccept: */*",
        b"Host: x\r\nAccept: */*",
        b"Host: x\r\nAccept: */*\r\nX-Trace: 1",
        b"Host: x\r\nAccept: */*\r\nX-Trace: 2",
        b"Host: x\r\nAccept: */*\r\nVia: 1.1 elsewhere",
        b"Host: x\r\nAccept: */*",
    ]
    try:
        for fields in heads:
            writer.write(b"GET /echo HTTP/1.1\r\n" + fields + b"\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            sent = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
            got = {name.lower(): value for name, value in sent["headers"]}
            assert got.get("x-trace") == (fields.split(b"X-Trace: ")[1].decode()
                                          if b"X-Trace" in fields else None), (fields, got)
            via = got["via"]
            assert via.startswith("1.1 elsewhere, ") if b"Via" in fields else "," not in via
    finally:
        writer.close()
