"""A response body framed by Content-Length that comes in several reads is counted off the
reads instead of parsed (proxy/upstream.py): the bytes, the end of the response, keep-alive
and what comes after the end must be as the parser would have had them.

The upstream is a real server on 127.0.0.1 that writes each response in scripted pieces, with
a pause between them so that they arrive as separate reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from devamb.proxy.upstream import (
    HEAD_PART,
    MAX_BUFFERS,
    ReadBuffers,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamPool,
    release_read_buffers,
    tls_context,
)
from tests.certs import certificates

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


# -- reads into the pool's buffers (ReadBuffers): a chunk is a view of one, never overwritten


async def test_reads_queued_behind_a_slow_reader_keep_their_bytes() -> None:
    small = os.urandom(200_000)  # (no pattern a reused buffer could repeat by chance)
    large = os.urandom(1024 * 1024)  # (over the high water: reading pauses and resumes)
    scripts = [pieces(head(len(body)) + body, *range(100, len(body), 20_000))
               for body in (small, large, small)]
    async with upstream(Scripted(scripts)) as pool:
        for body in (small, large, small):
            conn, _ = await pool.acquire()
            conn.send_head(GET)
            await conn.head_arrived()
            held = []  # every chunk kept (views of the buffers): none may change under us
            if body is small:  # every read arrives before any chunk is taken
                while not conn.reusable:
                    await asyncio.sleep(0.01)
                held = conn.whole_body() or []
            else:
                async for chunk in conn.body():
                    held.append(chunk)
                    await asyncio.sleep(0.002)
            assert len(held) > 5 and b"".join(held) == body
            del held
            pool.release(conn)
        assert 5 < len(pool.buffers) <= MAX_BUFFERS


async def test_a_large_read_with_the_head_has_its_body_counted_not_parsed() -> None:
    fields = [b"X-Field-%d: %s" % (n, b"v" * 200) for n in range(30)]
    long_head = head(len(BODY), *fields)
    assert len(long_head) > HEAD_PART  # the head itself spans more than one part
    for response, count in ((head(len(BODY)) + BODY, 1), (long_head + BODY, 31)):
        async with upstream(Scripted([[response], [response]])) as pool:
            for _ in range(2):
                conn, _ = await pool.acquire()
                conn.send_head(GET)
                await conn.head_arrived()
                chunks = [chunk async for chunk in conn.body()]
                assert b"".join(chunks) == BODY and conn.reusable
                assert len(conn.head()[1]) == count
                # past the head's part, the reads' bytes are views of the buffers, uncopied
                viewed = sum(len(chunk) for chunk in chunks if isinstance(chunk, memoryview))
                assert viewed > len(BODY) // 2
                del chunks
                pool.release(conn)


def test_a_read_buffer_is_reused_once_no_view_of_it_lives() -> None:
    buffers = ReadBuffers(limit=2)
    view = memoryview(buffers.take())[:10]  # (a chunk of a read: the one reference kept)
    first = id(view.obj)
    assert id(buffers.take()) != first  # the first is still seen through `view`
    del view
    assert id(buffers.take()) == first
    held = [memoryview(buffers.take()) for _ in range(2)]  # both kept buffers in use
    assert {id(view.obj) for view in held} == {first, id(buffers.kept[1])}
    assert id(buffers.take()) not in {first, id(buffers.kept[1])}
    assert len(buffers) == 2  # (that one was not kept)
    del held
    assert id(buffers.take()) == first


async def test_released_buffers_give_their_pages_back_but_never_a_chunk_in_use() -> None:
    body = os.urandom(1024 * 1024)
    response = head(len(body)) + body
    async with upstream(Scripted([[response], [response]])) as pool:
        conn, _ = await pool.acquire()
        conn.send_head(GET)
        await conn.head_arrived()
        held = [chunk async for chunk in conn.body()]  # views of several buffers
        pool.release(conn)
        in_use = len(pool.buffers)
        assert release_read_buffers() == 0  # (it has just read: left for the next tick)
        assert release_read_buffers() == 0 and b"".join(held) == body  # all in use: untouched
        del held
        assert release_read_buffers() == in_use
        assert all(buffer[:4096] == bytes(4096) for buffer in pool.buffers.kept)  # given back
        _, _, again = await exchange(pool)  # and read into again as before
    assert again == body


def test_a_pool_still_reading_keeps_its_pages_until_a_tick_without_reads() -> None:
    buffers = ReadBuffers(limit=4)
    views = [memoryview(buffers.take()) for _ in range(3)]  # three reads at once
    for view in views:
        view[:4096] = b"x" * 4096
    del views, view  # all free again
    assert buffers.release() == 0  # read since the last tick: the next reads reuse the pages
    assert all(buffer[:4096] == b"x" * 4096 for buffer in buffers.kept)
    assert buffers.release() == 3  # a tick without reads: given back
    assert all(buffer[:4096] == bytes(4096) for buffer in buffers.kept)
    assert buffers.release() == 0  # given back whole: not advised again
    view = memoryview(buffers.take())
    view[:4096] = b"y" * 4096
    assert buffers.release() == 0  # a read: busy again
    assert buffers.release() == 2  # the one the view holds is kept, the others given back
    assert buffers.release() == 2  # (not whole: the free ones are advised again)
    assert view[:4096] == b"y" * 4096
    del view
    assert buffers.release() == 3
    assert buffers.release() == 0


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_large_body_over_tls_arrives_whole(tmp_path: Path, loop_name: str) -> None:
    """TLS hands the decrypted bytes to get_buffer's buffer (asyncio's fills slices of it)."""
    ca, cert, key = certificates(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    body = os.urandom(1024 * 1024)
    response = head(len(body)) + body

    async def main() -> None:
        scripted = Scripted([pieces(response, 100, 300_000), [response]])
        server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0, ssl=served)
        port = server.sockets[0].getsockname()[1]
        pool = UpstreamPool("127.0.0.1", port, tls_context(str(ca), True))
        try:
            for _ in range(2):
                conn, _, got = await exchange(pool)
                assert got == body and conn.reusable
                pool.release(conn)
        finally:
            pool.close()
            server.close()

    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())
