"""devamb's HEADERS and DATA steps (h2conn._Connection's send_headers, send_data,
_receive_headers_frame, _receive_data_frame: h2's connection and stream steps in one function,
the frames' bytes made directly) do what h2's own do: the same bytes on the wire, the same
events, the same stream states and windows, the same errors."""

from __future__ import annotations

import functools
from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import hpack
import hyperframe.frame
import pytest

from devamb.proxy import h2frames
from devamb.proxy.h2conn import _Connection

H2 = h2.connection.H2Connection
REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Call"),
           (b":authority", b"up:50051"), (b"content-type", b"application/grpc"),
           (b"te", b"trailers")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
MESSAGE = b"\x00\x00\x00\x00\x05hello"


def _conn(client: bool, own_steps: bool) -> _Connection:
    """devamb's connection; with `own_steps` False, h2's own steps for HEADERS and DATA."""
    config = h2frames.Config(client_side=client, header_encoding=None,
                             validate_outbound_headers=False, normalize_outbound_headers=False,
                             validate_inbound_headers=not client,
                             normalize_inbound_headers=not client)
    conn = _Connection(config)
    if not own_steps:
        conn.send_headers = functools.partial(H2.send_headers, conn)  # type: ignore[method-assign]
        conn.send_data = functools.partial(H2.send_data, conn)  # type: ignore[method-assign]
        conn.receive_data = functools.partial(H2.receive_data, conn)  # type: ignore[method-assign]
        conn.acknowledge_received_data = functools.partial(  # type: ignore[method-assign]
            H2.acknowledge_received_data, conn)
        table = conn._frame_dispatch_table
        table[hyperframe.frame.HeadersFrame] = functools.partial(H2._receive_headers_frame, conn)
        table[hyperframe.frame.DataFrame] = functools.partial(H2._receive_data_frame, conn)
    conn.initiate_connection()
    return conn


def _pair(own_steps: bool) -> tuple[_Connection, _Connection]:
    client, server = _conn(True, own_steps), _conn(False, own_steps)
    server.receive_data(client.data_to_send())  # prefaces, SETTINGS and their ACKs
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def _events(events: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in events:
        fields = {k: v for k, v in vars(event).items()
                  if k not in ("stream_ended", "priority_updated")}
        ended = getattr(event, "stream_ended", None)
        fields["ended"] = None if ended is None else ended.stream_id
        if "headers" in fields and fields["headers"] is not None:
            fields["headers"] = [tuple(pair) for pair in fields["headers"]]
        out.append((type(event).__name__, fields))
    return out


def _state(conn: _Connection, stream_id: int) -> tuple[Any, ...]:
    stream = conn.streams[stream_id]
    machine = stream.state_machine
    return (machine.state, machine.headers_sent, machine.trailers_sent, machine.headers_received,
            machine.trailers_received, machine.stream_closed_by,
            stream.outbound_flow_control_window, stream._inbound_window_manager.current_window_size,
            stream.request_method, stream._authority, stream._expected_content_length,
            stream._actual_content_length, conn.outbound_flow_control_window,
            conn._inbound_flow_control_window_manager.current_window_size,
            conn.highest_outbound_stream_id, conn.highest_inbound_stream_id)


def _call(own_steps: bool, body: bytes, end_with_data: bool) -> list[Any]:
    """One call both ways: what went on the wire, the events, the states after each step."""
    client, server = _pair(own_steps)
    seen: list[Any] = []
    client.send_headers(1, REQUEST, end_stream=False)
    client.send_data(1, body, end_stream=True)
    wire = client.data_to_send()
    seen += [wire, _state(client, 1), _events(server.receive_data(wire)), _state(server, 1)]
    server.send_headers(1, RESPONSE)
    server.send_data(1, body, end_stream=end_with_data)
    if not end_with_data:
        server.send_headers(1, TRAILERS, end_stream=True)
    wire = server.data_to_send()
    seen += [wire, _state(server, 1), _events(client.receive_data(wire)), _state(client, 1)]
    return seen


@pytest.mark.parametrize("end_with_data", [False, True])
@pytest.mark.parametrize("body", [MESSAGE, b"", b"x" * 16384], ids=["message", "empty", "frame"])
def test_the_steps_do_what_h2s_do(body: bytes, end_with_data: bool) -> None:
    assert _call(True, body, end_with_data) == _call(False, body, end_with_data)


def test_a_block_over_the_frame_size_goes_in_continuations_as_h2s() -> None:
    big = [*REQUEST, (b"x-big", b"v" * 40_000)]
    wires = []
    for own_steps in (True, False):
        client, server = _pair(own_steps)
        client.send_headers(1, big, end_stream=True)
        wire = client.data_to_send()
        wires.append((wire, _events(server.receive_data(wire)), _state(server, 1)))
    assert wires[0] == wires[1]
    assert wires[0][0][3] == hyperframe.frame.HeadersFrame.type
    assert wires[0][0][9 + 16384 + 3] == hyperframe.frame.ContinuationFrame.type


@pytest.mark.parametrize("own_steps", [True, False])
def test_what_h2_refuses_is_refused_alike(own_steps: bool) -> None:
    client, server = _pair(own_steps)
    with pytest.raises(h2.exceptions.FlowControlError):
        client.send_headers(1, REQUEST)
        client.outbound_flow_control_window = 3
        client.send_data(1, MESSAGE)
    with pytest.raises(h2.exceptions.FrameTooLargeError):
        client.outbound_flow_control_window = 1 << 20
        client.send_data(1, b"x" * 16385)
    client.send_data(1, MESSAGE, end_stream=True)
    with pytest.raises(h2.exceptions.ProtocolError, match="SEND_DATA in state"):
        client.send_data(1, MESSAGE)  # (after its end)
    with pytest.raises(h2.exceptions.ProtocolError, match="Trailers must have END_STREAM"):
        server.receive_data(client.data_to_send())
        server.send_headers(1, RESPONSE)
        server.send_headers(1, TRAILERS)


def _frame(kind: type[hyperframe.frame.Frame], stream_id: int, flags: tuple[str, ...] = (),
           **fields: Any) -> bytes:
    frame = kind(stream_id)
    for flag in flags:
        frame.flags.add(flag)
    for name, value in fields.items():
        setattr(frame, name, value)
    return frame.serialize()


def _received(own_steps: bool, wire: bytes, cut: int) -> list[Any]:
    """What a server makes of `wire` (read in pieces of `cut` bytes): its events, what it
    answers, the streams' states; a protocol error as its message."""
    _client, server = _pair(own_steps)
    seen: list[Any] = []
    for at in range(0, len(wire), cut):
        try:
            seen.append(_events(server.receive_data(wire[at:at + cut])))
        except h2.exceptions.ProtocolError as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
            break
        seen.append(server.data_to_send())
        if 1 in server.streams and at == 0 and cut >= len(wire):
            seen.append(_state(server, 1))
    seen.append(sorted((sid, s.state_machine.state) for sid, s in server.streams.items()))
    return seen


def _block(headers: list[tuple[bytes, bytes]]) -> bytes:
    return _conn(True, True).encoder.encode(headers)


CASES = {
    "padded data": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",),
                          data=_block(REQUEST))
    + _frame(hyperframe.frame.DataFrame, 1, ("PADDED", "END_STREAM"), data=MESSAGE,
             pad_length=7),
    "priority": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS", "PRIORITY"),
                       data=_block(REQUEST), depends_on=0, stream_weight=15)
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE),
    "continuation": _frame(hyperframe.frame.HeadersFrame, 1, (), data=_block(REQUEST)[:5])
    + _frame(hyperframe.frame.ContinuationFrame, 1, ("END_HEADERS",),
             data=_block(REQUEST)[5:])
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE),
    "data in a header block": _frame(hyperframe.frame.HeadersFrame, 1, (),
                                     data=_block(REQUEST)[:5])
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE),
    "data after the end": _frame(hyperframe.frame.HeadersFrame, 1,
                                 ("END_HEADERS", "END_STREAM"), data=_block(REQUEST))
    + _frame(hyperframe.frame.DataFrame, 1, (), data=MESSAGE),
    "data on a reset stream": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",),
                                     data=_block(REQUEST))
    + _frame(hyperframe.frame.RstStreamFrame, 1, (), error_code=8)
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE),
    "data on no stream": _frame(hyperframe.frame.DataFrame, 3, (), data=MESSAGE),
    "stream id too low": _frame(hyperframe.frame.HeadersFrame, 5, ("END_HEADERS",),
                                data=_block(REQUEST))
    + _frame(hyperframe.frame.HeadersFrame, 3, ("END_HEADERS",), data=_block(REQUEST)),
    "two calls": b"".join(
        _frame(hyperframe.frame.HeadersFrame, sid, ("END_HEADERS",), data=_block(REQUEST))
        + _frame(hyperframe.frame.DataFrame, sid, ("END_STREAM",), data=MESSAGE)
        for sid in (1, 3)),
    "over the frame size": b"\x00\x40\x01\x00\x00\x00\x00\x00\x01" + b"x" * 16385,
    "stream 0": _frame(hyperframe.frame.WindowUpdateFrame, 0, (), window_increment=1)[:3]
    + b"\x00\x01\x00\x00\x00\x00" + b"\x00" * 1,
}
_OPEN = _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",), data=_block(REQUEST))


def _credit(stream_id: int, increment: bytes, length: bytes = b"\x00\x00\x04",
            flags: int = 0) -> bytes:
    """A WINDOW_UPDATE with any increment field (hyperframe refuses to make a bad one)."""
    return length + bytes((8, flags)) + stream_id.to_bytes(4, "big") + increment


CASES.update({  # the connection's WINDOW_UPDATE, taken without a frame object, and its edges
    "credit": _OPEN + _credit(0, b"\x00\x00\x00\x01") + _credit(0, b"\x7f\xff\x00\x00")
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE)
    + _credit(0, b"\x00\x00\x00\x15", flags=0xFF),
    "credit on the stream": _OPEN + _credit(1, b"\x00\x00\x10\x00"),
    "credit on stream 0 with the reserved bit": _OPEN + _credit(1 << 31, b"\x00\x00\x10\x00"),
    "credit of 0": _OPEN + _credit(0, b"\x00\x00\x00\x00"),
    "credit with the reserved bit": _OPEN + _credit(0, b"\x80\x00\x00\x01"),
    "credit over the window's limit": _OPEN + _credit(0, b"\x7f\xff\xff\xff"),
    "credit of 5 bytes": _OPEN + _credit(0, b"\x00\x00\x00\x01\x00", b"\x00\x00\x05"),
    "credit of 3 bytes": _OPEN + _credit(0, b"\x00\x00\x01", b"\x00\x00\x03"),
    "credit before anything": _credit(0, b"\x00\x01\x00\x00"),
})

_SIZED = [*REQUEST, (b"content-length", str(len(MESSAGE)).encode())]
CASES.update({  # the connection's state and the windows and content-length, checked inline
    "content-length": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",),
                             data=_block(_SIZED))
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE),
    "content-length short": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",),
                                   data=_block(_SIZED))
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE[:-1]),
    "content-length over": _frame(hyperframe.frame.HeadersFrame, 1, ("END_HEADERS",),
                                  data=_block(_SIZED))
    + _frame(hyperframe.frame.DataFrame, 1, (), data=MESSAGE + b"x"),
    "over the window": _OPEN + b"".join(
        _frame(hyperframe.frame.DataFrame, 1, (), data=b"x" * 16384) for _ in range(5)),
    "after GOAWAY": _OPEN + _frame(hyperframe.frame.GoAwayFrame, 0, (), last_stream_id=1)
    + _frame(hyperframe.frame.DataFrame, 1, ("END_STREAM",), data=MESSAGE)
    + _frame(hyperframe.frame.HeadersFrame, 3, ("END_HEADERS",), data=_block(REQUEST)),
})


@pytest.mark.parametrize("own_steps", [True, False])
def test_sending_on_a_closed_connection_is_refused_alike(own_steps: bool) -> None:
    client, _server = _pair(own_steps)
    client.send_headers(1, REQUEST)
    client.close_connection()
    with pytest.raises(h2.exceptions.ProtocolError, match=r"in state ConnectionState\.CLOSED"):
        client.send_data(1, MESSAGE)
    with pytest.raises(h2.exceptions.ProtocolError, match=r"in state ConnectionState\.CLOSED"):
        client.send_headers(3, REQUEST)


@pytest.mark.parametrize("cut", [1, 7, 1 << 20], ids=["byte", "pieces", "whole"])
@pytest.mark.parametrize("case", list(CASES))
def test_frames_received_as_h2_receives_them(case: str, cut: int) -> None:
    wire = CASES[case]
    assert _received(True, wire, cut) == _received(False, wire, cut)


def _acknowledged(own_steps: bool) -> list[Any]:
    """A server's answers to acknowledgements: small and large ones (the windows' increments,
    WINDOW_UPDATEs on the connection and the stream), on an open stream, a closed one, one
    never opened, and bad ones."""
    _client, server = _pair(own_steps)
    body = b"x" * 16384
    wire = _OPEN + b"".join(_frame(hyperframe.frame.DataFrame, 1, (), data=body)
                            for _ in range(3))
    wire += _frame(hyperframe.frame.HeadersFrame, 3, ("END_HEADERS",), data=_block(REQUEST))
    wire += _frame(hyperframe.frame.DataFrame, 3, ("END_STREAM",), data=body[:10000])
    server.receive_data(wire)
    seen: list[Any] = []
    for size, stream_id in ((21, 1), (1000, 1), (30000, 1), (1746, 1), (5, 3), (9995, 3), (8000, 1),
                            (0, 1), (10, 2), (10, 9), (-1, 1), (10, 0)):
        try:
            server.acknowledge_received_data(size, stream_id)
        except (ValueError, h2.exceptions.ProtocolError) as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
        seen.append(server.data_to_send())
        seen.append((_state(server, 1), _state(server, 3),
                     server._inbound_flow_control_window_manager._bytes_processed,
                     server.streams[1]._inbound_window_manager._bytes_processed))
    server.send_headers(3, RESPONSE, end_stream=True)  # stream 3 closed: its credit not given
    del server.streams[3]
    for size, stream_id in ((1747, 3), (40000, 3)):
        server.acknowledge_received_data(size, stream_id)
        seen.append((server.data_to_send(), _state(server, 1)))
    return seen


def test_acknowledgements_as_h2s() -> None:
    assert _acknowledged(True) == _acknowledged(False)


COOKIES = [*REQUEST[:4], (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"content-length", b"0")]
HEAD = [(b":method", b"HEAD"), *REQUEST[1:4]]
INFORMATIONAL = [(b":status", b"100")]
SIZED = [*RESPONSE, (b"content-length", b"0")]


def _repeated(own_steps: bool) -> list[Any]:
    """Calls on one connection whose header lists repeat (blocks of indexed fields after the
    first: the decoder's Fields, h2frames, and what is kept with them), the lists sent as plain
    lists or as BytesPairs carrying Fields: a cookie list (joined), a HEAD (its answer's
    content-length not counted), an informational answer, a content-length."""
    client, server = _pair(own_steps)
    kept = {name: h2frames.kept(pairs) for name, pairs in (
        ("request", REQUEST), ("response", RESPONSE), ("trailers", TRAILERS))}
    calls = [(REQUEST, [RESPONSE], TRAILERS), (kept["request"], [kept["response"]],
                                               kept["trailers"]),
             (REQUEST, [INFORMATIONAL, RESPONSE], TRAILERS), (COOKIES, [SIZED], TRAILERS),
             (HEAD, [SIZED], TRAILERS), (COOKIES, [SIZED], kept["trailers"]),
             (HEAD, [INFORMATIONAL, SIZED], TRAILERS), (kept["request"], [SIZED], TRAILERS)]
    seen: list[Any] = []
    for n, (request, responses, trailers) in enumerate(calls * 2):
        stream_id = 2 * n + 1
        client.send_headers(stream_id, request, end_stream=True)
        wire = client.data_to_send()
        seen += [wire, _state(client, stream_id), _events(server.receive_data(wire)),
                 _state(server, stream_id)]
        for response in responses:
            server.send_headers(stream_id, response)
        server.send_headers(stream_id, trailers, end_stream=True)
        wire = server.data_to_send()
        seen += [wire, _state(server, stream_id), _events(client.receive_data(wire)),
                 _state(client, stream_id)]
    return seen


def test_repeated_lists_are_sent_and_received_as_h2s() -> None:
    assert _repeated(True) == _repeated(False)


@pytest.mark.parametrize("own_steps", [True, False])
def test_a_content_length_h2_refuses_is_refused_for_a_list_received_before(
        own_steps: bool) -> None:
    """The same block (indexed fields, the second time on) received for two HEADs
    (content-length not read) then for a POST (read, refused): the list's Fields keep no
    answer h2 refused."""
    client, server = _pair(own_steps)
    bad = [(b":status", b"200"), (b"content-length", b"x1")]
    for stream_id in (1, 3):
        client.send_headers(stream_id, HEAD, end_stream=True)
    client.send_headers(5, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    for stream_id in (1, 3):
        server.send_headers(stream_id, bad, end_stream=True)
        client.receive_data(server.data_to_send())
        assert client.streams[stream_id]._expected_content_length == 0
    server.send_headers(5, bad, end_stream=True)
    with pytest.raises(h2.exceptions.ProtocolError, match="Invalid content-length"):
        client.receive_data(server.data_to_send())


def _refused_block(own_steps: bool, headers: list[tuple[bytes, bytes]] | None,
                   block: bytes) -> str:
    _client, server = _pair(own_steps)
    if headers is not None:
        block = hpack.Encoder().encode(headers)
    size = 16384
    pieces = [block[i:i + size] for i in range(0, len(block), size)]
    wire = b"".join(
        _frame(hyperframe.frame.HeadersFrame if n == 0 else hyperframe.frame.ContinuationFrame,
               1, ("END_HEADERS",) if n == len(pieces) - 1 else (), data=piece)
        for n, piece in enumerate(pieces))
    with pytest.raises(h2.exceptions.ProtocolError) as refused:
        server.receive_data(wire)
    return f"{type(refused.value).__name__}: {refused.value}; {server.data_to_send()!r}"


@pytest.mark.parametrize(("headers", "block"), [
    (None, b"\xff\xff\xff\xff\x0f"),  # an index past the table
    (None, b"\x00\x85"),  # a name cut short
    ([*REQUEST, (b"x-big", b"v" * 70_000)], b""),  # over the header list size
], ids=["index", "short", "oversized"])
def test_a_block_hpack_refuses_is_refused_as_h2_refuses_it(
        headers: list[tuple[bytes, bytes]] | None, block: bytes) -> None:
    assert _refused_block(True, headers, block) == _refused_block(False, headers, block)
