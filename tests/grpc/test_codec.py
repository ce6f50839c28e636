"""The engine-side gRPC pieces without I/O: status names, framing, paths, raw decoding."""

from __future__ import annotations

import json

import grpc
from google.protobuf import descriptor_pb2, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from devamb.grpc.framing import Splitter, frame
from devamb.grpc.path import is_grpc, split_path
from devamb.grpc.status import CODES, name_of, parse_code
from devamb.grpc.wire import decode_raw


def test_codes_match_grpcio() -> None:
    for code in grpc.StatusCode:
        number, _ = code.value
        assert CODES[code.name] == number
        assert name_of(number) == code.name
    assert name_of(99) == "CODE_99"
    assert parse_code("unavailable") == 14 and parse_code("14") == 14 and parse_code(5) == 5
    assert parse_code("NOPE") is None


def test_splitter_takes_messages_split_anywhere() -> None:
    wire = frame(b"hello") + frame(b"") + frame(b"x" * 70, compressed=True) + frame(b"end")
    for step in (1, 2, 3, 5, 7, len(wire)):
        splitter = Splitter(limit=64)
        frames = []
        for i in range(0, len(wire), step):
            frames += splitter.feed(wire[i:i + step])
        assert [(f.size, f.compressed, f.data) for f in frames] == [
            (5, False, b"hello"), (0, False, b""), (70, True, None), (3, False, b"end"),
        ]
        assert not splitter.pending
    half = Splitter()
    half.feed(frame(b"abc")[:6])
    assert half.pending


def test_paths_and_content_types() -> None:
    assert split_path("/pkg.Svc/Method") == ("pkg.Svc", "Method")
    assert split_path("/nope") is None and split_path(None) is None
    assert split_path("/a/b/c") is None
    assert is_grpc("application/grpc") and is_grpc("application/grpc+proto")
    assert is_grpc("Application/GRPC; charset=x")
    assert not is_grpc("application/grpc-web") and not is_grpc("text/plain")


def test_raw_decode_reads_fields_like_protoc_decode_raw() -> None:
    message = descriptor_pb2.FileDescriptorProto(
        name="a.proto", package="p",
        message_type=[descriptor_pb2.DescriptorProto(name="M")],
    )
    message.options.java_multiple_files = True
    fields, error = decode_raw(message.SerializeToString())
    assert error is None
    assert fields[0] == {"field": 1, "type": "string", "value": "a.proto"}
    assert fields[1] == {"field": 2, "type": "string", "value": "p"}
    assert fields[2] == {"field": 4, "type": "message",
                         "value": [{"field": 1, "type": "string", "value": "M"}]}
    assert fields[3] == {"field": 8, "type": "message",
                         "value": [{"field": 10, "type": "varint", "value": 1}]}
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    fields, error = decode_raw(stamp.SerializeToString())
    assert error is None and [f["value"] for f in fields] == [1_700_000_000, 5]
    fields, error = decode_raw(b"\x0a\x03\xff\xfe\x00" + b"\x15\x01\x00\x00\x00")
    assert error is None
    assert fields == [{"field": 1, "type": "bytes", "value": "fffe00"},
                      {"field": 2, "type": "fixed32", "value": 1}]


def test_raw_decode_never_raises_on_garbage() -> None:
    fields, error = decode_raw(b"\x08\x96\x01\x12\x09short")
    assert fields == [{"field": 1, "type": "varint", "value": 150}]
    assert error is not None and "9 bytes announced" in error
    for garbage in (b"\xff" * 11, b"\x00", b"\x0f", b"\x08", b"\x09abc", bytes(range(256))):
        fields, error = decode_raw(garbage)
        assert isinstance(fields, list) and error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_raw_decode_of_any_bytes_returns_fields_or_an_error(data: bytes) -> None:
    fields, error = decode_raw(data)
    assert isinstance(fields, list)
    assert error is None or isinstance(error, str)
    json.dumps(fields)  # what the record keeps is JSON-able


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=8), st.integers(1, 50), st.integers(0, 80))
def test_any_split_of_framed_messages_gives_them_back(
        messages: list[bytes], step: int, limit: int) -> None:
    wire = b"".join(frame(m) for m in messages)
    splitter = Splitter(limit=limit)
    frames = []
    for i in range(0, len(wire), step):
        frames += splitter.feed(wire[i:i + step])
    assert [f.size for f in frames] == [len(m) for m in messages]
    assert [f.data for f in frames] == [m if len(m) <= limit else None for m in messages]


def test_raw_decode_stops_after_its_field_budget() -> None:
    from devamb.grpc.wire import MAX_FIELDS

    fields, error = decode_raw(b"\x08\x01" * 30_000)
    assert len(fields) == MAX_FIELDS
    assert error == f"more than {MAX_FIELDS} fields; the rest is not shown"
    nested = b"\x08\x01" * 3000
    fields, error = decode_raw((b"\x0a" + bytes([0x80 | 6000 & 0x7F, 6000 >> 7]) + nested) * 2)
    assert error is not None and "fields" in error


def _protobuf_like() -> st.SearchStrategy[bytes]:
    """Bytes that are mostly protobuf fields (keys, varints, lengths, text, nested), some cut
    short or wrong, so that every branch of the decode is taken."""
    def field(number: int, wire: int, body: bytes) -> bytes:
        return _varint(number << 3 | wire) + body
    leaf = st.one_of(
        st.builds(lambda n, v: field(n, 0, _varint(v)), st.integers(0, 3000),
                  st.integers(0, 2**64 - 1)),
        st.builds(lambda n, b: field(n, 1, b), st.integers(1, 20),
                  st.binary(min_size=7, max_size=8)),
        st.builds(lambda n, b: field(n, 5, b), st.integers(1, 20),
                  st.binary(min_size=3, max_size=4)),
        st.builds(lambda n, t: field(n, 2, _varint(len(t.encode())) + t.encode()),
                  st.integers(1, 200), st.text(max_size=20)),
        st.builds(lambda n, b, d: field(n, 2, _varint(max(0, len(b) + d)) + b), st.integers(1, 20),
                  st.binary(max_size=20), st.integers(-1, 1)),
        st.binary(max_size=3))
    fields = st.lists(leaf, max_size=6).map(b"".join)
    nested = st.builds(lambda n, b: field(n, 2, _varint(len(b)) + b), st.integers(1, 20),
                       fields)
    twice = st.builds(lambda n, b: field(n, 2, _varint(len(b)) + b), st.integers(1, 20),
                      st.lists(st.one_of(leaf, nested), max_size=4).map(b"".join))
    return st.lists(st.one_of(leaf, nested, twice), max_size=5).map(b"".join)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_protobuf_like(), st.binary(max_size=200)))
def test_raw_decode_gives_what_the_decode_before_its_tighter_loop_gave(data: bytes) -> None:
    from tests.grpc import wire_before

    assert decode_raw(data) == wire_before.decode_raw(data)


def test_raw_decode_of_text_and_controls_as_before() -> None:
    from tests.grpc import wire_before

    for text in ("world", "tab\there", "a\nb\r", "\x7f", "\x00x", "é ü", "\x1f", "\x0b\x0c",
                 "\u2028", "", " "):
        for data in (b"\x0a" + _varint(len(text.encode())) + text.encode(),
                     b"\x12\x03\xff\xfe\x00", b"\x08\x96\x01\x12\x09short"):
            assert decode_raw(data) == wire_before.decode_raw(data)
    data = b"\x08\x01" * (3000) + b"\x0a\x04\x08\x01\x08\x01" * 600
    assert decode_raw(data) == wire_before.decode_raw(data)
