"""The flow-controlled chunk queue shared by the shaped TCP directions and WebSocket frame flows."""

from __future__ import annotations

import asyncio

from devamb.proxy.flow import FlowQueue


def _queue(calls: list[str]) -> FlowQueue:
    return FlowQueue(lambda: calls.append("pause"), lambda: calls.append("resume"),
                     high=10, low=4)


async def test_pauses_past_high_and_resumes_below_low() -> None:
    calls: list[str] = []
    queue = _queue(calls)
    for _ in range(3):
        queue.feed(b"abcd")  # 12 bytes queued: past high once
    queue.feed(b"ef")
    assert calls == ["pause"]  # once, however much more comes
    assert not queue.room.is_set()
    queue.feed_eof()
    got = []
    async for chunk in queue.chunks():
        got.append(chunk)
        if len(got) == 2:  # 6 bytes left: not yet below low
            assert calls == ["pause"]
        if len(got) == 3:  # 2 left
            assert calls == ["pause", "resume"]
            assert queue.room.is_set()
    assert got == [b"abcd", b"abcd", b"abcd", b"ef"]
    assert calls == ["pause", "resume"]


async def test_waits_for_chunks_and_ends_after_eof() -> None:
    queue = FlowQueue()  # no source to pause (a target that waits for room itself)
    got: list[bytes] = []

    async def take() -> None:
        async for chunk in queue.chunks():
            got.append(chunk)

    task = asyncio.create_task(take())
    await asyncio.sleep(0)
    assert not task.done() and got == []
    queue.feed(b"x" * 300_000)  # past the default high water mark
    assert not queue.room.is_set()
    await asyncio.sleep(0)
    assert got == [b"x" * 300_000] and queue.room.is_set()
    queue.feed(b"y")
    queue.feed_eof()  # what was fed before the end still comes
    await asyncio.wait_for(task, 10)
    assert got[-1] == b"y"
