"""Request-head limits and timers, over real sockets to a real engine: a head over 64 KiB or with
more than 100 header lines is refused with 431 however it arrives (one read or a drip), a
connection that never sends a byte is closed after the header timeout, and an idle keep-alive
connection between requests is not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devamb.proxy import front
from tests.hardening.conftest import Receiving, still_serving


async def send(host: str, port: int, data: bytes, *, piece: int = 0) -> bytes:
    """Send `data` (in one write, or in `piece`-byte writes) and read until the engine closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if piece:
            for start in range(0, len(data), piece):
                writer.write(data[start:start + piece])
                await writer.drain()
        else:
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # refused mid-way: the answer is still in the socket
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def head_of(headers: list[bytes]) -> bytes:
    return b"GET /big HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


BIG_HEADS = {
    "ten-7000-byte-headers": head_of([b"X-Big-%d: " % i + b"a" * 7000 for i in range(10)]),
    "10000-small-headers": head_of([b"X-%d: y" % i for i in range(10_000)]),
    "101-headers": head_of([b"X-%d: y" % i for i in range(100)]),  # plus Host: 101
}


@pytest.mark.parametrize("piece", [0, 1000], ids=["one-read", "dripped"])
@pytest.mark.parametrize("head", BIG_HEADS.values(), ids=BIG_HEADS.keys())
async def test_head_over_the_limits_is_refused(
    proxy, raw: Receiving, caplog: pytest.LogCaptureFixture, head: bytes, piece: int
) -> None:
    engine, host, port = proxy
    answer = await send(host, port, head, piece=piece)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert raw.accepted == 0 and raw.complete == []  # nothing reached the upstream
    await still_serving(engine)
    no_traceback(caplog)


async def test_head_just_within_the_limits_passes(proxy, raw: Receiving) -> None:
    _engine, host, port = proxy
    headers = [b"X-%d: " % i + b"v" * 570 for i in range(98)]  # + Host, Connection: 100, 57 KB
    answer = await send(host, port, head_of(headers)[:-2] + b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert len(raw.complete) == 1


async def test_pipelined_burst_is_not_taken_for_one_big_head(proxy, raw: Receiving) -> None:
    """Many small requests in one read, the last one's head cut short: only that head counts
    towards the 64 KiB limit, not the whole read."""
    _engine, host, port = proxy
    one = b"GET /p HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    count = 1200  # about 90 KB
    data = one * count + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data[:-10])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.write(data[-10:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert b" 431 " not in answer
    assert answer.count(b"HTTP/1.1 200 ") == count + 1


async def test_connection_that_never_speaks_is_closed(
    proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header timeout runs from accept (nginx's client_header_timeout), not only from the
    first byte: a silent connection is not held for the 10-minute keep-alive idle."""
    engine, host, port = proxy
    monkeypatch.setattr(front.FrontProtocol, "header_timeout", 0.5)
    silent = [await asyncio.open_connection(host, port) for _ in range(20)]
    closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 8) for r, _ in silent))
    assert closed == [b""] * 20  # closed by the engine, without an answer
    for _, writer in silent:
        writer.close()
    await still_serving(engine)


async def test_keep_alive_idle_between_requests_is_not_the_header_timeout(
    proxy, raw: Receiving, monkeypatch: pytest.MonkeyPatch
) -> None:
    _engine, host, port = proxy
    monkeypatch.setattr(front.FrontProtocol, "header_timeout", 0.5)
    reader, writer = await asyncio.open_connection(host, port)
    for n in range(2):
        if n:
            await asyncio.sleep(1.5)  # idle between requests: well past the header timeout
        writer.write(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        await asyncio.wait_for(reader.readexactly(2), 5)  # "ok"
    # a second request's head that never ends is cut after the header timeout
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 8) == b""
    writer.close()
    assert len(raw.complete) == 2
