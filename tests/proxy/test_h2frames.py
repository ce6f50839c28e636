"""h2frames: frames serialize to the bytes hyperframe's own code makes, flags parse the same, and
h2's header encoding keeps its answer for lists that are not all bytes pairs."""

from __future__ import annotations

import hpack
import hyperframe.frame as hf
import pytest

from devamb.proxy import h2conn, h2frames  # noqa: F401 (h2conn installs h2frames)

FRAMES = [
    hf.HeadersFrame(1, flags=("END_HEADERS", "END_STREAM"), data=b"\x82\x86"),
    hf.HeadersFrame(3, data=b"\x88"),
    hf.DataFrame(5, data=b"x" * 300, flags=("END_STREAM",)),
    hf.DataFrame(7, data=b"", flags=()),
    hf.DataFrame(9, data=b"pad", flags=("PADDED",), pad_length=4),
    hf.SettingsFrame(0, settings={hf.SettingsFrame.MAX_CONCURRENT_STREAMS: 100}),
    hf.SettingsFrame(0, flags=("ACK",)),
    hf.WindowUpdateFrame(0, window_increment=65535),
    hf.RstStreamFrame(3, error_code=8),
    hf.PingFrame(0, opaque_data=b"12345678", flags=("ACK",)),
    hf.GoAwayFrame(0, last_stream_id=7, error_code=0, additional_data=b"bye"),
    hf.ContinuationFrame(1, data=b"\x84", flags=("END_HEADERS",)),
    hf.PriorityFrame(3, depends_on=1, stream_weight=16),
]


def original_serialize(frame: hf.Frame) -> bytes:
    body = frame.serialize_body()
    flags = 0
    for flag, bit in frame.defined_flags:
        if flag in frame.flags:
            flags |= bit
    header = hf._STRUCT_HBBBL.pack((len(body) >> 8) & 0xFFFF, len(body) & 0xFF, frame.type,
                                   flags, frame.stream_id & 0x7FFFFFFF)
    return header + body


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_frames_serialize_and_parse_as_hyperframe_does(frame: hf.Frame) -> None:
    assert hf.Frame.serialize is h2frames.serialize
    wire = frame.serialize()
    assert wire == original_serialize(frame)
    assert frame.body_len == len(wire) - 9
    parsed, length = hf.Frame.parse_frame_header(memoryview(wire[:9]))
    parsed.parse_body(memoryview(wire[9:9 + length]))
    assert type(parsed) is type(frame)
    assert set(parsed.flags) == set(frame.flags)
    assert parsed.serialize() == wire


def test_unknown_frame_types_keep_their_flag_byte() -> None:
    wire = b"\x00\x00\x02\xfa\x05\x00\x00\x00\x01hi"
    parsed, length = hf.Frame.parse_frame_header(memoryview(wire[:9]))
    parsed.parse_body(memoryview(wire[9:9 + length]))
    assert isinstance(parsed, hf.ExtensionFrame)
    assert parsed.flag_byte == 5
    assert parsed.serialize() == wire


def test_header_lists_are_encoded_as_h2_would() -> None:
    pairs = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert h2frames.utf8_encode_headers(pairs) == pairs
    assert h2frames.utf8_encode_headers(iter(pairs)) == pairs
    text = [(":status", "200"), ("x-name", "é")]
    assert h2frames.utf8_encode_headers(text) == [(b":status", b"200"),
                                                  (b"x-name", "é".encode())]
    secret = [hpack.NeverIndexedHeaderTuple(b"authorization", b"k")]
    out = h2frames.utf8_encode_headers(secret)
    assert isinstance(out[0], hpack.NeverIndexedHeaderTuple) and out == secret


def test_flags_are_a_set_refusing_undefined_flags() -> None:
    frame = hf.DataFrame(1)
    assert isinstance(frame.flags, h2frames.FrameFlags)
    frame.flags.add("END_STREAM")
    assert "END_STREAM" in frame.flags and "ACK" not in frame.flags
    with pytest.raises(ValueError, match="Unexpected flag: ACK"):
        frame.flags.add("ACK")
    with pytest.raises(ValueError):
        hf.SettingsFrame(0, flags=("END_STREAM",))
    frame.flags.discard("END_STREAM")
    assert not frame.flags
    assert repr(hf.HeadersFrame(1, flags=("END_STREAM", "END_HEADERS")).flags) == (
        "['END_HEADERS', 'END_STREAM']")


@pytest.mark.parametrize("kind", [hf.HeadersFrame, hf.DataFrame])
def test_frames_made_in_one_step_are_hyperframe_s(kind: type[hf.Frame]) -> None:
    original = h2frames._headers_init if kind is hf.HeadersFrame else h2frames._data_init
    for args in ((1,), (3, b"abc")):
        ours = kind(*args)
        theirs = kind.__new__(kind)
        original(theirs, *args)
        assert vars(ours) == vars(theirs)
        assert ours.serialize() == theirs.serialize()
    assert kind(5, b"x", flags=("END_STREAM",), pad_length=2).pad_length == 2  # hyperframe's
    with pytest.raises(hf.InvalidDataError):
        kind(0)


def test_state_machines_find_their_transitions_and_settings_read_as_h2_s() -> None:
    import h2.config
    import h2.connection
    import h2.settings

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                            (":path", "/")], end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert [type(e).__name__ for e in events][-2:] == ["RequestReceived", "StreamEnded"]
    assert h2.connection.ConnectionInputs.__hash__ is object.__hash__
    settings = h2.settings.Settings(client=True)
    assert settings.max_concurrent_streams == 2**32 + 1  # unset: h2's default
    settings.max_concurrent_streams = 7
    assert settings.max_concurrent_streams == 2**32 + 1  # not acknowledged yet
    settings.acknowledge()
    assert settings.max_concurrent_streams == 7


def test_header_validation_flags_are_h2_s() -> None:
    import h2.config
    import h2.events
    import h2.stream

    config = h2.config.H2Configuration(client_side=False)
    for client in (True, False, None):
        stream = h2.stream.H2Stream(1, config, 65535, 65535)
        stream.state_machine.client = client
        for kind in (h2.events.RequestReceived, h2.events.TrailersReceived,
                     h2.stream._ResponseSent, h2.stream._TrailersSent,
                     h2.events.ResponseReceived):
            event = kind.__new__(kind)  # (only its kind matters)
            ours = stream._build_hdr_validation_flags([event])
            assert ours == h2frames._build_flags(stream, [event])
            assert stream._build_hdr_validation_flags([event]) is ours  # built once


def test_config_options_are_plain_values_checked_as_h2_checks_them() -> None:
    config = h2frames.Config(client_side=False, header_encoding=None,
                             validate_inbound_headers=False)
    assert (config.client_side, config.header_encoding, config.validate_inbound_headers,
            config.normalize_inbound_headers) == (False, None, False, True)
    assert "client_side" in vars(config)  # an instance attribute: no descriptor call
    with pytest.raises(ValueError, match="must be a bool"):
        h2frames.Config(client_side=1)
    with pytest.raises(ValueError, match="cannot be True"):
        h2frames.Config(header_encoding=True)


@pytest.mark.parametrize("size", [40, 40_000])  # one HEADERS frame; HEADERS + CONTINUATIONs
def test_header_blocks_are_framed_as_h2_frames_them(size: int) -> None:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    import h2.stream

    def sent(build: object) -> bytes:
        original = h2.stream.H2Stream._build_headers_frames
        h2.stream.H2Stream._build_headers_frames = build  # type: ignore[method-assign,assignment]
        try:
            client = h2.connection.H2Connection(h2frames.Config(
                client_side=True, header_encoding=None, validate_outbound_headers=False,
                normalize_outbound_headers=False))
            client.initiate_connection()
            client.send_headers(1, h2frames.BytesPairs([
                (b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"),
                (b":path", b"/"), (b"x-big", b"v" * size)]), end_stream=True)
            return client.data_to_send()
        finally:
            h2.stream.H2Stream._build_headers_frames = original  # type: ignore[method-assign]

    ours = sent(h2frames.build_headers_frames)
    assert ours == sent(h2frames._build_frames)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.local_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 2**20})
    events = server.receive_data(ours)
    request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    assert (b"x-big", b"v" * size) in request.headers
    continuations = [ours.count(b"\x09" + bytes([flags]) + b"\x00\x00\x00\x01")
                     for flags in (0, 4)]  # (type 9, without and with END_HEADERS, stream 1)
    assert continuations == ([1, 1] if size > 16384 else [0, 0])
