"""A relayed body streamed to a client that reads slowly: every chunk written without waiting
until the client's socket buffer is full, then drained (forward._relay_body's
`StreamResponse.write_nowait`), bytes and framing intact, the connection reusable after."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest

from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream, pattern_digest

TOTAL = 8 * 1024 * 1024 + 77  # over the loopback's socket buffers with a small receive buffer
PROFILE = "services:\n  api:\n    listen: 0\n    targets:\n      up: {url}\n"


async def small_window_client(
    host: str, port: int, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose receive buffer is small (32 KiB), so the proxy's writes to it back up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock, limit=limit)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The head and the body (Content-Length or chunked), read 16 KiB at a time, slowly at
    first so that the proxy's writes to us back up."""
    head = await reader.readuntil(b"\r\n\r\n")
    lowered = head.lower()
    digest = hashlib.sha256()
    reads = 0

    async def take(size: int) -> bytes:
        nonlocal reads
        reads += 1
        if reads < 20:
            await asyncio.sleep(0.01)
        return await reader.readexactly(size)

    if b"transfer-encoding: chunked" in lowered:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            left = size
            while left:
                part = await take(min(left, 16384))
                digest.update(part)
                left -= len(part)
            assert await reader.readexactly(2) == b"\r\n"
            if not size:
                break
    else:
        length = int(lowered.split(b"content-length: ")[1].split(b"\r\n")[0])
        while length:
            part = await take(min(length, 16384))
            digest.update(part)
            length -= len(part)
    return head, digest.hexdigest().encode()


@pytest.mark.parametrize("framing", ["?length=1", ""], ids=["content-length", "chunked"])
async def test_a_slow_client_gets_a_large_relayed_body_whole(
    make_engine: EngineFactory, upstream: HttpUpstream, framing: str
) -> None:
    engine = await make_engine(PROFILE.format(url=upstream.url))
    host, port = listen_url(engine, "api").removeprefix("http://").split(":")
    reader, writer = await small_window_client(host, int(port), limit=1 << 20)
    try:
        for _ in range(2):  # the second on the same connection: the first's framing held
            writer.write(f"GET /bytes/{TOTAL}{framing} HTTP/1.1\r\nHost: up\r\n\r\n".encode())
            head, digest = await asyncio.wait_for(read_response(reader), 60)
            assert head.startswith(b"HTTP/1.1 200")
            assert digest.decode() == pattern_digest(TOTAL)
    finally:
        writer.close()
    records = [e for e in engine.ctx.store.all() if e.service == "api"]
    assert len(records) == 2 and all(r.response_body.size == TOTAL for r in records)


async def test_a_client_gone_mid_body_leaves_the_engine_serving(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(url=upstream.url))
    host, port = listen_url(engine, "api").removeprefix("http://").split(":")
    reader, writer = await small_window_client(host, int(port))
    writer.write(f"GET /bytes/{TOTAL}?length=1 HTTP/1.1\r\nHost: up\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(100_000)  # some of the body, then gone
    writer.transport.abort()
    for _ in range(2):  # the engine goes on serving whole bodies, on fresh client connections
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /bytes/{TOTAL}?length=1 HTTP/1.1\r\nHost: up\r\n\r\n".encode())
        _, digest = await asyncio.wait_for(read_response(reader), 60)
        assert digest.decode() == pattern_digest(TOTAL)
        writer.close()
    for _ in range(100):  # the first exchange's record ends when its relay notices
        records = sorted(engine.ctx.store.all(), key=lambda r: r.id)
        if len(records) == 3:
            break
        await asyncio.sleep(0.05)
    first = records[0]
    assert first.response_body.size < TOTAL and first.error, (first.response_body.size, first.error)
    assert [r.response_body.size for r in records[1:]] == [TOTAL, TOTAL]
