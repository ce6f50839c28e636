"""A relayed unary call costs one turn of the loop per leg: each leg's frames go out in one
write from the turn that read what they answer, and nothing is left scheduled after it (no
flush that finds its frames already written, no done callback of the stream's task, no loop
timer per call for the response headers' wait): a real engine between a raw h2 client and a
raw h2 upstream on loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest

from devamb.proxy.h2conn import H2Endpoint, H2Stream
from devamb.proxy.h2front import H2FrontServer
from devamb.proxy.h2upstream import H2Upstream
from tests.conftest import EngineFactory

PROFILE = """
version: 1
services:
  g:
    listen: 0
    protocol: grpc
    target: up
    timeout: 10s
    targets:
      up: http://127.0.0.1:{port}
"""
MESSAGE = b"\x00\x00\x00\x00\x05hello"
REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Call"),
           (":authority", "devamb"), ("content-type", "application/grpc"), ("te", "trailers")]


def _kinds(chunk: bytes) -> list[str]:
    """The frames in `chunk` (whole frames only), by type name."""
    kinds, at = [], 0
    while at + 9 <= len(chunk):
        length = int.from_bytes(chunk[at:at + 3], "big")
        kinds.append(type(hyperframe.frame.Frame.parse_frame_header(
            memoryview(chunk[at:at + 9]))[0]).__name__.removesuffix("Frame"))
        at += 9 + length
    return kinds


class _Upstream(asyncio.Protocol):
    """A gRPC-like server: each request answered with headers, message, trailers and the
    connection's credit in one write (grpcio's order); what it read, read by read."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.reads.append(data)
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived) and b"reflection" in dict(
                    event.headers)[b":path"]:  # (devamb asks once: no such service here)
                self.conn.send_headers(event.stream_id, [
                    (":status", "200"), ("content-type", "application/grpc"),
                    ("grpc-status", "12")], end_stream=True)
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            if isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                self.conn.send_headers(sid, [(":status", "200"),
                                             ("content-type", "application/grpc")])
                self.conn.send_data(sid, MESSAGE)
                self.conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        assert self.transport is not None
        self.transport.write(self.conn.data_to_send())


async def _client(port: int, calls: int, steady: Callable[[], None]) -> list[list[bytes]]:
    """`calls` unary calls one at a time on one connection, each request written at once;
    what each call's answer came in (read by read). `steady` runs after the second call."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    answers: list[list[bytes]] = []
    try:
        for call in range(calls):
            if call == 2:
                steady()
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, REQUEST)
            conn.send_data(sid, MESSAGE, end_stream=True)
            writer.write(conn.data_to_send())
            reads: list[bytes] = []
            ended = False
            while not ended:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "the connection closed"
                reads.append(data)
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    ended = ended or (isinstance(event, h2.events.StreamEnded)
                                      and event.stream_id == sid)
                writer.write(conn.data_to_send())
            answers.append(reads)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answers


async def test_a_unary_call_leaves_nothing_scheduled_after_its_writes(
        make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    reads: list[bytes] = []
    server = await loop.create_server(lambda: _Upstream(reads), "127.0.0.1", 0)
    engine = await make_engine(PROFILE.format(port=server.sockets[0].getsockname()[1]))
    bound = engine.services["g"].bound
    assert bound is not None
    scheduled: list[str] = []
    timers: list[str] = []
    idle_flushes: list[int] = []
    counting = False

    def steady() -> None:  # from the third call on: the connections and HPACK settled
        nonlocal counting
        counting = True
        reads.clear()

    call_soon, call_at = loop.call_soon, loop.call_at

    def soon(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        if counting:
            scheduled.append(getattr(callback, "__qualname__", repr(callback)))
        return call_soon(callback, *args, **kwargs)

    def at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if counting:
            timers.append(getattr(callback, "__qualname__", repr(callback)))
        return call_at(when, callback, *args, **kwargs)

    flush_now = H2Endpoint.flush_now

    def flush(self: H2Endpoint) -> None:
        if counting and not self.conn._data_to_send:
            idle_flushes.append(1)
        flush_now(self)

    monkeypatch.setattr(loop, "call_soon", soon)
    monkeypatch.setattr(loop, "call_at", at)
    monkeypatch.setattr(H2Endpoint, "flush_now", flush)
    async with server:
        answers = await _client(bound[1], 10, steady)
    counting = False
    for answer in answers[2:]:  # the answer's frames in one write (one read here)
        assert [_kinds(chunk) for chunk in answer] == [["Headers", "Data", "Headers"]]
    requests = [kinds for kinds in map(_kinds, reads)
                if kinds != ["RstStream"]]  # (the reflection's stream, ended late)
    assert requests == [["Headers", "Data"]] * 8  # each request's frames in one write
    assert idle_flushes == []  # no write was scheduled for frames that another wrote
    assert not [name for name in scheduled if "flush" in name or "discard" in name]
    assert [name for name in timers if "expire" in name] == []  # (the headers' wait)
    frontend = engine.lifecycle.listeners["g"]._server  # type: ignore[attr-defined]
    assert len(frontend._tasks) == 0  # each stream's task left as it ended


async def test_headers_held_for_more_leave_before_a_wait_for_the_window() -> None:
    """The request's headers sent with `more` (the relay's: its DATA follows at once) go
    out when the DATA must wait for the peer's window: the peer, which opens the window
    only once it saw the headers, is not kept waiting for them."""
    loop = asyncio.get_running_loop()
    seen: list[list[str]] = []

    class Stingy(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=False))
            self.conn.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            self.conn.initiate_connection()
            transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            events = self.conn.receive_data(data)
            seen.append([type(e).__name__ for e in events])
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    self.conn.increment_flow_control_window(1000, event.stream_id)
                if isinstance(event, h2.events.StreamEnded):
                    self.conn.send_headers(event.stream_id, [(":status", "200")],
                                           end_stream=True)
            self.transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

    server = await loop.create_server(Stingy, "127.0.0.1", 0)
    async with server:
        upstream = H2Upstream("127.0.0.1", server.sockets[0].getsockname()[1], 5.0)
        try:
            connection = await upstream.connection()
            for _ in range(200):  # the server's SETTINGS (a stream window of 0) in
                if connection._settings_seen:
                    break
                await asyncio.sleep(0.005)
            stream: H2Stream = await connection.open(
                [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"a"),
                 (b":path", b"/p")], end=False, more=True)
            assert connection.conn._data_to_send  # held: the caller sends more
            assert not stream.send_now(b"abc", end=True)  # no window
            await asyncio.wait_for(stream.send_data(b"abc", end=True), 5)
            item = await asyncio.wait_for(stream.next(), 5)
            assert item.kind == "headers"
        finally:
            upstream.close()
    assert any("RequestReceived" in kinds for kinds in seen)


async def test_a_stream_task_leaves_the_table_as_it_ends_even_cancelled_before_it_ran() -> None:
    """The front end's table of stream tasks (what a stop drains) loses each task as its
    work ends, with no done callback; one cancelled before it ever ran does not hold up a
    drain."""
    ran: list[int] = []

    async def on_stream(stream: H2Stream, remote: str | None) -> None:
        ran.append(stream.id)
        await asyncio.sleep(0)

    server = H2FrontServer(on_stream, lambda remote, why: None)
    loop = asyncio.get_running_loop()
    done, never = H2Stream(None, 1), H2Stream(None, 3)  # type: ignore[arg-type]
    server.spawn(done, "a", loop)
    server.spawn(never, "b", loop)
    server._tasks[never].cancel()
    assert len(server._tasks) == 2
    await asyncio.sleep(0.01)
    assert ran == [1]
    assert list(server._tasks) == [never]  # (cancelled before its first step: still there)
    assert await asyncio.wait_for(server.stop(5.0), 1.0) == 0  # not drained for 5 s
    assert not server._tasks
