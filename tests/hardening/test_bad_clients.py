"""Clients that lie, vanish or drip: the engine stays up, records an error, closes the upstream
connection it opened, never hands the upstream a request that looks complete but is not, and
keeps serving everyone else. (Malformed heads, 431/414, CL+TE and a 50-connection slowloris
are in tests/proxy/test_front.py; head limits and timers in test_request_limits.py; request
lines, transfer codings, Host, loops and the records of refusals in test_request_parsing.py.)"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct

import aiohttp
import pytest

from devamb.engine.core import Engine
from devamb.proxy import front
from tests.conftest import EngineFactory, listen_url
from tests.hardening.conftest import Receiving, still_serving
from tests.hardening.raw_upstream import all_closed, read_head
from tests.upstreams import HttpUpstream


async def settled(engine: Engine, count: int) -> list:  # type: ignore[type-arg]
    """The records of the raw target, once `count` of them are finished."""
    for _ in range(250):
        records = [e for e in engine.store.all() if e.target == "raw"]
        if len(records) >= count:
            return records
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} records: {engine.store.all()}")


def abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize("apart", [False, True], ids=["one-packet", "extra-later"])
async def test_content_length_shorter_than_sent(proxy, raw: Receiving, apart: bool) -> None:
    """The body ends where Content-Length says; what follows is refused as a request of its
    own (all at once when it arrives with the head, as the parser sees it whole)."""
    engine, host, port = proxy
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    if apart:
        await writer.drain()
        await asyncio.sleep(0.3)
    writer.write(b"GARBAGE\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert b" 400 " in answer
    if apart:
        assert answer.startswith(b"HTTP/1.1 200") and b"\r\n\r\nok" in answer
        assert raw.complete == [b"hello"]
    else:
        assert raw.complete in ([], [b"hello"])  # never more than the 5 bytes declared
    await still_serving(engine)


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_content_length_longer_than_sent_then_gone(proxy, raw: Receiving, how: str) -> None:
    engine, host, port = proxy
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"z" * 10)
    await writer.drain()
    await asyncio.sleep(0.2)
    if how == "close":
        writer.close()
    else:
        abort(writer)
    [record] = await settled(engine, 1)
    assert record.error and record.bytes_in == 10
    assert await all_closed(raw)  # the upstream connection was not left open
    assert raw.complete == []  # and the upstream never got a request that looked whole
    await still_serving(engine)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_client_gone_mid_request_body(proxy, raw: Receiving, chunked: bool) -> None:
    engine, host, port = proxy
    _reader, writer = await asyncio.open_connection(host, port)
    if chunked:
        writer.write(b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            writer.write(b"1000\r\n" + os.urandom(4096) + b"\r\n")
    else:
        writer.write(b"PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        writer.write(os.urandom(80_000))
    await writer.drain()
    await asyncio.sleep(0.3)
    abort(writer)
    [record] = await settled(engine, 1)
    assert record.error
    assert await all_closed(raw)
    assert raw.complete == []  # a cut body is never passed on as a complete one
    await still_serving(engine)


async def test_client_gone_mid_response_body(proxy, raw: Receiving) -> None:
    engine, host, port = proxy

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        while True:  # until the engine closes the connection
            writer.write(b"x" * 65536)
            await writer.drain()
            await asyncio.sleep(0.005)

    raw.handler = endless
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readexactly(300_000), 5)
    abort(writer)
    [record] = await settled(engine, 1)
    assert record.error and record.status == 200
    assert await all_closed(raw)
    await still_serving(engine)


@pytest.mark.parametrize(
    ("garbage", "protocol_error"),
    [
        (b"\xff" * 64, True),  # reserved bits and opcode 15
        (b"\x81\xff" + b"\x7f" * 8, True),  # a 2**63-ish length
        # random bytes, seeded: unseeded, one run in many began with a ping, which the upstream
        # answered with a pong before the error (a right answer, but not what is tested here)
        (random.Random(4096).randbytes(4096), True),
        (b"\x81\x05hello", False),  # an unmasked client frame: aiohttp lets it through
        (b"\x88\x82abcd" + b"\x00", False),  # a close frame cut short, then silence
    ],
    ids=["reserved", "huge-length", "random", "unmasked", "short-close"],
)
async def test_websocket_garbage_frames(
    make_engine: EngineFactory, upstream: HttpUpstream, garbage: bytes, protocol_error: bool
) -> None:
    engine = await make_engine(
        f"services:\n  api:\n    listen: 0\n    targets: {{raw: \"{upstream.url}\"}}\n"
    )
    host, port = engine.services["api"].bound
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(garbage)
    await writer.drain()
    if protocol_error:  # the engine ends the session: a close frame, then the end
        try:
            rest = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            rest = b""
        assert not rest or rest[0] == 0x88  # nothing, or a close frame
    else:  # not an error the engine can see: the client gives up instead
        await asyncio.sleep(0.3)
    abort(writer)
    [record] = await settled(engine, 1)  # either way the exchange ends and is recorded
    assert record.status == 101 and record.path == "/ws"
    async with aiohttp.ClientSession() as client:  # WebSockets still work, and so does HTTP
        async with client.ws_connect(listen_url(engine, "api") + "/ws") as ws:
            await ws.send_str("hi")
            assert (await ws.receive_str()) == "echo:hi"
        assert (await client.get(listen_url(engine, "api") + "/ok")).status == 200


async def test_500_slow_connections_do_not_stop_others(
    proxy, raw: Receiving, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, host, port = proxy
    monkeypatch.setattr(front.FrontProtocol, "header_timeout", 1.0)
    slow = []
    for i in range(500):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip-%d: " % i)  # never finished
        slow.append((reader, writer))
    async with aiohttp.ClientSession() as client:  # others are served meanwhile
        statuses = await asyncio.gather(*(client.get(listen_url(engine, "api") + f"/ok{i}")
                                          for i in range(50)))
        assert [r.status for r in statuses] == [200] * 50
        assert len(raw.complete) == 50
    closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 10) for r, _ in slow))
    assert all(data == b"" for data in closed)  # each one closed by the engine
    for _, writer in slow:
        writer.close()
    await still_serving(engine)


@pytest.mark.parametrize(
    "target", [b"*", b"http://x/abs?q", b"http://127.0.0.1:1/"], ids=["asterisk", "abs", "port"]
)
async def test_request_target_that_is_not_a_path(proxy, raw: Receiving, target: bytes) -> None:
    """Found by fuzzing: these made the URL target fail building the upstream URL (500 and a
    traceback). A reverse proxy refuses them cleanly."""
    engine, host, port = proxy
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"OPTIONS " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"x-devamb-error: bad-request-target" in answer
    assert raw.complete == []
    await still_serving(engine)
