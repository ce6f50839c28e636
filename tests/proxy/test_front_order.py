"""The HTTP/1.1 front end serves keep-alive and pipelined requests in order."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from devamb.proxy.front import FrontServer
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import Response, StreamResponse


async def test_keep_alive_requests_with_bodies_are_served_one_after_the_other() -> None:

    async def handler(request: FrontRequest) -> StreamResponse:
        await asyncio.sleep(0)
        body = await request.read()
        await asyncio.sleep(0.01)
        return Response(text=f"{request.method} {request.raw_path} {len(body)}")

    server = FrontServer(handler)
    host, port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as client:
            for i in range(3):  # one keep-alive connection, request after request
                async with client.post(f"http://{host}:{port}/p{i}", data=b"x" * 10) as answer:
                    assert answer.status == 200
                    assert await answer.text() == f"POST /p{i} 10"
    finally:
        await server.stop(1.0)


@pytest.mark.parametrize("pipelined", [2, 5])
async def test_pipelined_requests_are_answered_in_order(pipelined: int) -> None:
    async def handler(request: FrontRequest) -> StreamResponse:
        await asyncio.sleep(0.001)
        return Response(text=request.raw_path)

    server = FrontServer(handler)
    host, port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(pipelined)))
        data = b""
        last = b"/%d" % (pipelined - 1)
        while data.count(b"HTTP/1.1 200") < pipelined or not data.endswith(last):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk
            data += chunk
        bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in data.split(b"HTTP/1.1 200")[1:]]
        assert [b.split(b"/")[-1] for b in bodies] == [b"%d" % i for i in range(pipelined)]
        writer.close()
    finally:
        await server.stop(1.0)


async def test_a_connection_that_closes_while_idle_leaves_no_task_behind() -> None:
    """A keep-alive connection's requests are answered in turn, the next one awaited between
    them; when the client goes away while nothing is in flight, that wait ends too."""
    async def handler(request: FrontRequest) -> StreamResponse:
        return Response(text=request.raw_path)

    server = FrontServer(handler)
    host, port = await server.start("127.0.0.1", 0)
    before = len(asyncio.all_tasks())
    try:
        reader, writer = await asyncio.open_connection(host, port)
        for i in range(3):  # request after request on one connection, each answered
            writer.write(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            data = b""
            while not data.endswith(b"/%d" % i):
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk
                data += chunk
        writer.close()
        await writer.wait_closed()
        for _ in range(500):  # the server sees the close, its connection's task ends
            if not server.connections and len(asyncio.all_tasks()) <= before:
                break
            await asyncio.sleep(0.01)
        assert not server.connections
        assert len(asyncio.all_tasks()) <= before
    finally:
        await server.stop(1.0)
