"""The front end serves a request without a Task (proxy/inline.py), with a Task's semantics."""

from __future__ import annotations

import asyncio
import contextvars

import aiohttp
import pytest

from devamb.proxy.front import FrontServer
from devamb.proxy.inline import Inline, task_running
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import Response, StreamResponse

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("inline_test", default="unset")


def _from_callback(coro) -> asyncio.Future[Inline]:  # type: ignore[no-untyped-def]
    """Start `coro` in an Inline from a loop callback (no task current), as the front end does."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[Inline] = loop.create_future()

    def begin() -> None:
        assert not task_running(loop)
        runner = Inline(coro, loop)
        made.set_result(runner)
        runner.begin()

    loop.call_soon(begin)
    return made


async def test_an_inline_coroutine_is_the_current_task_and_has_its_own_context() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    gate: asyncio.Future[str] = loop.create_future()
    finished = loop.create_future()

    async def body() -> None:
        seen.append(asyncio.current_task())
        VAR.set("inside")
        seen.append(await gate)
        seen.append(asyncio.current_task())
        seen.append(VAR.get())
        finished.set_result(None)

    runner = await _from_callback(body())
    assert not runner.done() and seen == [runner]
    gate.set_result("value")
    await asyncio.wait_for(finished, 5)
    assert seen == [runner, "value", runner, "inside"]
    assert VAR.get() == "unset"  # the coroutine's context var stayed in its context
    await asyncio.sleep(0)
    assert runner.done()


async def test_cancel_throws_into_the_awaited_point_and_timeouts_work() -> None:
    loop = asyncio.get_running_loop()
    events: list[str] = []
    finished = loop.create_future()

    async def body() -> None:
        try:
            async with asyncio.timeout(0.05):
                await loop.create_future()  # never done: the timeout cancels it
        except TimeoutError:
            events.append("timed out")
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            events.append("cancelled")
            finished.set_result(None)
            raise

    runner = await _from_callback(body())
    for _ in range(500):
        if events:
            break
        await asyncio.sleep(0.01)
    assert events == ["timed out"]
    assert runner.cancelling() == 0  # the timeout's cancellation was taken back
    assert runner.cancel()
    await asyncio.wait_for(finished, 5)
    await asyncio.sleep(0)
    assert events == ["timed out", "cancelled"] and runner.done()
    assert not runner.cancel()


async def test_a_cancel_before_the_first_step_ends_it_at_once() -> None:
    loop = asyncio.get_running_loop()
    ran: list[bool] = []

    async def body() -> None:
        ran.append(True)

    runner = Inline(body(), loop)
    runner.cancel()
    done = loop.create_future()
    loop.call_soon(lambda: (runner.begin(), done.set_result(None)))
    await done
    assert runner.done() and ran == []


async def test_the_front_end_serves_requests_without_a_task() -> None:
    kinds: list[str] = []

    async def handler(request: FrontRequest) -> StreamResponse:
        kinds.append(type(asyncio.current_task()).__name__)
        await asyncio.sleep(0)  # a bare yield: stepped again by the loop
        await asyncio.sleep(0.01)  # a future: resumed from its done-callback
        return Response(text=f"{request.method} {request.raw_path} {VAR.get()}")

    server = FrontServer(handler)
    host, port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as client:
            for i in range(3):  # one keep-alive connection, request after request
                async with client.post(f"http://{host}:{port}/p{i}", data=b"x" * 10) as answer:
                    assert answer.status == 200
                    assert await answer.text() == f"POST /p{i} unset"
    finally:
        await server.stop(1.0)
    assert kinds == ["Inline"] * 3


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
