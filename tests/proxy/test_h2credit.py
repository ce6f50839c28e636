"""WINDOW_UPDATEs that end a read (a gRPC server's answer ends with its credit for the request)
are taken in once the relay has passed on what came before them: the credit is applied, and
before anything the peer sends next."""

from __future__ import annotations

import asyncio
import contextlib

import h2.config
import h2.connection
import h2.events
import pytest

from devamb.proxy.h2conn import H2Endpoint
from devamb.proxy.h2upstream import H2Upstream

CREDIT = 100_000


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An h2 server that answers each request with its headers, message and trailers and a
    WINDOW_UPDATE for the connection in one write (grpcio's order)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await _answer(conn, reader, writer)
    writer.close()


async def _answer(conn: h2.connection.H2Connection, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                conn.send_data(sid, b"\x00\x00\x00\x00\x02hi")
                conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                conn.increment_flow_control_window(CREDIT)
        writer.write(conn.data_to_send())


async def _call(port: int) -> tuple[list[str], int, int]:
    upstream = H2Upstream("127.0.0.1", port, 5.0)
    try:
        connection = await upstream.connection()
        before = connection.conn.outbound_flow_control_window
        stream = await connection.open([(b":method", b"POST"), (b":scheme", b"http"),
                                         (b":authority", b"a"), (b":path", b"/p.S/M")], end=True)
        kinds = []
        while True:
            item = await asyncio.wait_for(stream.next(), 10)
            kinds.append(item.kind)
            if item.kind in ("end", "reset"):
                break
        for _ in range(200):  # a turn of the loop or two
            if connection.conn.outbound_flow_control_window > before:
                break
            await asyncio.sleep(0.005)
        return kinds, before, connection.conn.outbound_flow_control_window
    finally:
        upstream.close()


async def test_a_read_ending_with_window_updates_gets_its_answer_and_its_credit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[bytes] = []
    hold = H2Endpoint._hold_credit
    monkeypatch.setattr(H2Endpoint, "_hold_credit",
                        lambda self, data: held.append(data) or hold(self, data))
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    async with server:
        kinds, before, after = await _call(server.sockets[0].getsockname()[1])
    assert kinds == ["headers", "data", "trailers", "end"]
    assert after == before + CREDIT
    assert held  # (the answer and its credit came in one read)


async def test_held_credit_is_taken_before_what_the_peer_sends_next() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    async with server:
        upstream = H2Upstream("127.0.0.1", server.sockets[0].getsockname()[1], 5.0)
        try:
            connection = await upstream.connection()
            for _ in range(200):  # the server's SETTINGS in
                if connection._settings_seen:
                    break
                await asyncio.sleep(0.005)
            before = connection.conn.outbound_flow_control_window
            ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"
            credit = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + CREDIT.to_bytes(4, "big")
            connection.data_received(ping + credit)  # held for the end of this turn
            assert connection.conn.outbound_flow_control_window == before
            connection.data_received(ping)  # in the same turn: the credit goes first
            assert connection.conn.outbound_flow_control_window == before + CREDIT
            await asyncio.sleep(0.01)
            assert connection.conn.outbound_flow_control_window == before + CREDIT  # once
        finally:
            upstream.close()


FAKE = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + CREDIT.to_bytes(4, "big")  # WINDOW_UPDATE


async def _serve_lookalike(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An h2 server whose answer's first write ends with a DATA frame whose last 13 bytes
    look like a WINDOW_UPDATE (its trailers follow in another write)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    conn.send_headers(sid, [(":status", "200")])
                    conn.send_data(sid, b"message" + FAKE)
                    writer.write(conn.data_to_send())
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
            writer.write(conn.data_to_send())
    writer.close()


async def test_a_data_frame_ending_like_a_window_update_arrives_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run of WINDOW_UPDATEs is read from the end of a read: DATA whose last bytes look
    like one is held to the end of the turn at most, and passed on whole, in order."""
    held: list[bytes] = []
    hold = H2Endpoint._hold_credit

    def holding(self: H2Endpoint, data: bytes) -> bytes:
        kept = hold(self, data)
        if len(kept) < len(data):
            held.append(data[len(kept):])
        return kept
    monkeypatch.setattr(H2Endpoint, "_hold_credit", holding)
    server = await asyncio.start_server(_serve_lookalike, "127.0.0.1", 0)
    async with server:
        upstream = H2Upstream("127.0.0.1", server.sockets[0].getsockname()[1], 5.0)
        try:
            connection = await upstream.connection()
            before = connection.conn.outbound_flow_control_window
            stream = await connection.open([(b":method", b"POST"), (b":scheme", b"http"),
                                             (b":authority", b"a"), (b":path", b"/p.S/M")],
                                            end=True)
            items = []
            while True:
                item = await asyncio.wait_for(stream.next(), 10)
                items.append(item)
                if item.kind in ("end", "reset"):
                    break
            assert [i.kind for i in items] == ["headers", "data", "trailers", "end"]
            assert b"".join(i.data for i in items) == b"message" + FAKE
            assert connection.conn.outbound_flow_control_window == before  # no credit came
            assert held == [FAKE]  # (the look-alike was held, then taken as DATA)
        finally:
            upstream.close()
