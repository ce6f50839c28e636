"""A response body framed by Content-Length that comes in several reads is counted off the
reads instead of parsed (proxy/upstream.py): the bytes, the end of the response, keep-alive
and what comes after the end must be as the parser would have had them.

The upstream is a real server on 127.0.0.1 that writes each response in scripted pieces, with
a pause between them so that they arrive as separate reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise

import pytest

from devamb.proxy.upstream import UpstreamClosed, UpstreamConnection, UpstreamPool

GET = b"GET / HTTP/1.1\r\nHost: up\r\n\r\n"
BODY = bytes(range(256)) * 1024  # 256 KiB


def head(length: int, *extra: bytes, version: bytes = b"1.1") -> bytes:
    fields = b"".join(line + b"\r\n" for line in extra)
    return b"HTTP/%s 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (version, length, fields)


class Scripted:
    """Answers the n-th request on a connection with `script[n]`: pieces written apart."""

    def __init__(self, scripts: Sequence[Sequence[bytes]], close_after: bool = False) -> None:
        self.scripts = scripts
        self.close_after = close_after
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for pieces in self.scripts:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)  # a read of its own
            if self.close_after:
                writer.close()
                return
            await reader.read()  # until the client closes
        writer.close()


@contextlib.asynccontextmanager
async def upstream(scripted: Scripted) -> AsyncIterator[UpstreamPool]:
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port, None)
    try:
        yield pool
    finally:
        pool.close()
        server.close()


async def exchange(pool: UpstreamPool) -> tuple[UpstreamConnection, bool, bytes]:
    conn, reused = await pool.acquire()
    conn.send_head(GET)
    await conn.head_arrived()
    body = b"".join([chunk async for chunk in conn.body()])
    return conn, reused, body


def pieces(whole: bytes, *cuts: int) -> list[bytes]:
    edges = [0, *cuts, len(whole)]
    return [whole[a:b] for a, b in pairwise(edges)]


async def test_a_body_in_many_reads_arrives_whole_and_the_connection_is_reused() -> None:
    response = head(len(BODY)) + BODY
    first = pieces(response, 60, 70_000, 150_000, 200_000)  # head and a little body, then more
    second = pieces(response, 30)  # the head cut short: the parser takes the next read too
    scripted = Scripted([first, second, [response]])
    async with upstream(scripted) as pool:
        for round_ in range(3):
            conn, reused, body = await exchange(pool)
            assert body == BODY
            assert conn.reusable and reused == (round_ > 0)
            pool.release(conn)
    assert scripted.requests == 3


async def test_connection_close_is_honoured_after_a_counted_body() -> None:
    response = head(len(BODY), b"Connection: close") + BODY
    async with upstream(Scripted([pieces(response, 100, 1000)], close_after=True)) as pool:
        conn, _, body = await exchange(pool)
    assert body == BODY and not conn.keep_alive and not conn.reusable


async def test_http_1_0_keep_alive_is_honoured_after_a_counted_body() -> None:
    response = head(len(BODY), b"Connection: keep-alive", version=b"1.0") + BODY
    async with upstream(Scripted([pieces(response, 100, 1000), [response]])) as pool:
        conn, _, body = await exchange(pool)
        assert body == BODY and conn.reusable
        pool.release(conn)
        again, reused, body = await exchange(pool)
    assert reused and again is conn and body == BODY


async def test_bytes_past_the_end_of_a_counted_body_make_the_connection_unusable() -> None:
    response = head(len(BODY)) + BODY
    script = pieces(response + b"HTTP/1.1 200 OK\r\n\r\n", 100, 1000)
    async with upstream(Scripted([script])) as pool:
        conn, _, body = await exchange(pool)
    assert body == BODY  # the response itself was whole
    assert not conn.reusable  # but nothing may follow it on that connection


async def test_an_upstream_that_closes_inside_a_counted_body_breaks_the_exchange() -> None:
    response = head(len(BODY)) + BODY[:100_000]
    async with upstream(Scripted([pieces(response, 100, 1000)], close_after=True)) as pool:
        conn, _ = await pool.acquire()
        conn.send_head(GET)
        await conn.head_arrived()
        received = []
        with pytest.raises(UpstreamClosed):
            async for chunk in conn.body():
                received.append(chunk)
    assert b"".join(received) == BODY[:100_000] and not conn.reusable


async def test_a_chunked_body_in_many_reads_is_still_parsed() -> None:
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in pieces(BODY, 1000, 100_000)) + b"0\r\n\r\n"
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    async with upstream(Scripted([pieces(response, 80, 50_000), [response]])) as pool:
        conn, _, body = await exchange(pool)
        assert body == BODY and conn.reusable
        pool.release(conn)
        _, reused, body = await exchange(pool)
    assert reused and body == BODY
