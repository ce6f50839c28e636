"""Switching a `protocol: grpc` service while a long gRPC call is in flight, with real grpcio
servers and one grpcio client channel: the call in flight finishes on the target it started
on, with all its messages; the next call, on the same channel, goes to the new target."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory

PROFILE = """
version: 1
services:
  rpc:
    listen: 0
    protocol: grpc
    target: old
    timeout: 30s
    targets:
      old: http://127.0.0.1:{old}
      new: http://127.0.0.1:{new}
"""
WAIT = 30.0  # seconds: generous bounds on every wait; none is a timing assertion


class Slow:
    """A grpcio server of /test.Slow/{Feed,Talk,Ping} whose answers start with its name.

    Feed (server streaming, request b"N") yields its first message at once and the other N-1
    only once `gate` is set. Talk (bidi) answers each request as it comes. `calls` lists the
    methods called, in order."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.gate = threading.Event()
        self.calls: list[str] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Slow", {
            "Feed": grpc.unary_stream_rpc_method_handler(self._feed),
            "Talk": grpc.stream_stream_rpc_method_handler(self._talk),
            "Ping": grpc.unary_unary_rpc_method_handler(self._ping),
        }),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _feed(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.calls.append("Feed")
        for i in range(int(request)):
            if i == 1 and not self.gate.wait(WAIT):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the gate never opened")
            yield self.name + f" {i}".encode()

    def _talk(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self.calls.append("Talk")
        for request in requests:
            yield self.name + b" " + request

    def _ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append("Ping")
        return self.name + b" " + request

    def stop(self) -> None:
        self.gate.set()
        self.server.stop(None)


@pytest.fixture
async def rig(make_engine: EngineFactory) -> AsyncIterator[tuple[Engine, grpc.Channel, Slow,
                                                                   Slow]]:
    old, new = Slow("old"), Slow("new")
    new.gate.set()  # only the old target's stream is held
    engine = await make_engine(PROFILE.format(old=old.port, new=new.port))
    bound = engine.services["rpc"].bound
    assert bound is not None
    channel = grpc.insecure_channel(f"127.0.0.1:{bound[1]}")
    try:
        yield engine, channel, old, new
    finally:
        channel.close()
        old.stop()
        new.stop()


async def _records(engine: Engine, count: int) -> list[Any]:
    """The last `count` records, once all of them are complete."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        found = engine.store.recent(count)
        done = len(found) >= count and all(r.duration_ms is not None for r in found)
        if done or loop.time() > deadline:
            return found
        await asyncio.sleep(0.02)


def _calls(records: list[Any]) -> list[tuple[str, str, int, int, Any]]:
    """(method, target, requests, responses, status) per record, sorted."""
    out = []
    for record in records:
        note = record.notes["grpc"]
        out.append((note["method"], record.target, note["requests"], note["responses"],
                    note["status"]))
    return sorted(out)


async def test_a_switch_during_a_server_stream_lets_it_finish_on_the_old_target(rig) -> None:
    engine, channel, old, new = rig
    feed = channel.unary_stream("/test.Slow/Feed")
    ping = channel.unary_unary("/test.Slow/Ping")
    call = feed(b"20", timeout=WAIT)
    assert await asyncio.to_thread(next, call) == b"old 0"  # in flight, held by the gate

    await engine.switch("rpc", "new")
    # the same channel (one connection to devamb) goes on: its next calls reach the new target
    assert await asyncio.to_thread(ping, b"after", timeout=WAIT) == b"new after"
    assert await asyncio.to_thread(lambda: list(feed(b"3", timeout=WAIT))) == [
        b"new 0", b"new 1", b"new 2"]

    old.gate.set()
    rest = await asyncio.to_thread(list, call)
    assert rest == [f"old {i}".encode() for i in range(1, 20)]
    assert call.code() == grpc.StatusCode.OK
    assert old.calls == ["Feed"] and new.calls == ["Ping", "Feed"]

    assert _calls(await _records(engine, 3)) == [
        ("Feed", "new", 1, 3, 0),
        ("Feed", "old", 1, 20, 0),
        ("Ping", "new", 1, 1, 0),
    ]


async def test_a_switch_during_a_bidi_stream_lets_it_go_on_with_the_old_target(rig) -> None:
    engine, channel, old, new = rig
    talk = channel.stream_stream("/test.Slow/Talk")
    ping = channel.unary_unary("/test.Slow/Ping")
    requests: queue.Queue[bytes | None] = queue.Queue()

    def sent() -> Iterator[bytes]:
        while (item := requests.get(timeout=WAIT)) is not None:
            yield item

    call = talk(sent(), timeout=WAIT)
    requests.put(b"a")
    assert await asyncio.to_thread(next, call) == b"old a"

    await engine.switch("rpc", "new")
    requests.put(b"b")  # the call in flight: still the old target
    assert await asyncio.to_thread(next, call) == b"old b"
    assert await asyncio.to_thread(ping, b"after", timeout=WAIT) == b"new after"
    assert await asyncio.to_thread(lambda: list(talk(iter([b"c"]), timeout=WAIT))) == [b"new c"]
    requests.put(b"d")
    assert await asyncio.to_thread(next, call) == b"old d"
    requests.put(None)
    assert await asyncio.to_thread(list, call) == []
    assert call.code() == grpc.StatusCode.OK
    assert old.calls == ["Talk"] and new.calls == ["Ping", "Talk"]

    assert _calls(await _records(engine, 3)) == [
        ("Ping", "new", 1, 1, 0),
        ("Talk", "new", 1, 1, 0),
        ("Talk", "old", 3, 3, 0),
    ]
