"""Bad HTTP/2 input on an http2 service, written frame by frame on raw sockets (hyperframe):
each gets the error RFC 9113 names, a notice, and a well-behaved client is served meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from devamb.engine.core import Engine
from devamb.proxy import h2limits
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory, Notices
from tests.replicas import eventually
from tests.upstreams_h2 import H2Upstream

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, SETTINGS_TIMEOUT, FRAME_SIZE_ERROR = 0, 1, 4, 6
REFUSED_STREAM, ENHANCE_YOUR_CALM = 7, 11
PROFILE = """
version: 1
services:
  h2:
    listen: 0
    protocol: http2
    target: up
    timeout: 10s
    targets:
      up: http://127.0.0.1:{port}
"""


@dataclasses.dataclass
class Setup:
    engine: Engine
    port: int
    up: H2Upstream
    notices: Notices
    good: H2Client  # a well-behaved client, connected before the bad one


@pytest.fixture
async def h2(make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    # short timeouts so that the tests do not wait for the defaults
    monkeypatch.setattr(h2limits, "DEFAULT", dataclasses.replace(
        h2limits.DEFAULT, handshake_timeout=0.5, headers_timeout=0.5, idle_timeout=0.5))
    up = await H2Upstream("up").start()
    engine = await make_engine(PROFILE.format(port=up.port))
    bound = engine.services["h2"].bound
    assert bound is not None
    good = H2Client("127.0.0.1", bound[1], 5.0)
    setup = Setup(engine, bound[1], up, Notices(engine), good)
    await served(setup)
    yield setup
    good.close()
    await up.stop()


async def served(setup: Setup, again: bool = True) -> None:
    """The well-behaved client is served. (Its connection may be closed as idle, with the short
    idle timeout here, as it opens a stream: then once more, on a new connection.)"""
    headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
               (b":path", b"/fine")]
    stream = await setup.good.open(headers, end=True)
    body = bytearray()
    while (item := await stream.next()).kind != "end":
        if item.kind == "reset" and item.lost and again:
            return await served(setup, again=False)
        assert item.kind in ("headers", "data"), item
        body += item.data
        stream.ack(item.flow)
    assert bytes(body) == b"up GET /fine"


class Raw:
    """A raw socket speaking frames: what the test writes, what devamb answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = hpack.Encoder()

    @classmethod
    async def connect(cls, port: int, greet: bool = True) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        if greet:  # the preface, our SETTINGS, and the ACK of devamb's
            await raw.send(PREFACE + SettingsFrame(0).serialize()
                           + SettingsFrame(0, flags=["ACK"]).serialize())
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def headers(self, stream_id: int, path: str = "/", end: bool = True,
                extra: list[tuple[str, str]] | None = None) -> bytes:
        block = self.encoder.encode([(":method", "GET"), (":scheme", "http"),
                                     (":authority", "x"), (":path", path), *(extra or [])])
        flags = ["END_HEADERS"] + (["END_STREAM"] if end else [])
        return HeadersFrame(stream_id, block, flags=flags).serialize()

    async def frames(self, until: type[Frame] = GoAwayFrame) -> list[Frame]:
        """Frames devamb sends, up to the first `until` (or the end of the connection)."""
        got: list[Frame] = []
        while True:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(9), 20)
                frame, length = Frame.parse_frame_header(memoryview(head))
                frame.parse_body(memoryview(await self.reader.readexactly(length)))
            except asyncio.IncompleteReadError:
                return got
            got.append(frame)
            if isinstance(frame, until):
                return got

    async def goaway(self) -> GoAwayFrame:
        frames = await self.frames()
        assert frames and isinstance(frames[-1], GoAwayFrame), frames
        return frames[-1]

    def close(self) -> None:
        self.writer.close()


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream_id) + payload


async def noticed(setup: Setup, text: str) -> None:
    await eventually(lambda: bool(setup.notices.saying(text)), 10,
                     f"a notice saying {text!r}; seen {setup.notices.messages}")


async def test_a_client_not_speaking_http2_gets_protocol_error(h2: Setup) -> None:
    raw = await Raw.connect(h2.port, greet=False)
    await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    goaway = await raw.goaway()
    assert goaway.error_code == PROTOCOL_ERROR
    assert await raw.reader.read() == b""  # then the connection closes
    await noticed(h2, "broke HTTP/2 or does not speak it")
    await noticed(h2, "sent GOAWAY PROTOCOL_ERROR")
    await served(h2)


@pytest.mark.parametrize(("frame", "code"), [
    (raw_frame(6, 0, 0, b"1234567"), FRAME_SIZE_ERROR),  # PING is 8 bytes
    (raw_frame(0, 0, 0, b"abc"), PROTOCOL_ERROR),  # DATA on stream 0
    (raw_frame(0, 0, 1, b"x" * 20000), FRAME_SIZE_ERROR),  # over SETTINGS_MAX_FRAME_SIZE
    (raw_frame(4, 0, 0, b"\x00\x04\x80\x00\x00\x00"), 3),  # window over 2^31-1: FLOW_CONTROL
], ids=["ping-length", "data-on-stream-0", "frame-too-large", "settings-bad-window"])
async def test_a_malformed_frame_gets_the_connection_error_the_rfc_names(
        h2: Setup, frame: bytes, code: int) -> None:
    raw = await Raw.connect(h2.port)
    await raw.send(frame)
    goaway = await raw.goaway()
    assert goaway.error_code == code
    await noticed(h2, "broke HTTP/2")
    await served(h2)


async def test_unknown_flags_on_a_known_frame_are_ignored(h2: Setup) -> None:
    """RFC 9113 4.1: flags with no meaning for a frame type MUST be ignored."""
    raw = await Raw.connect(h2.port)
    await raw.send(raw_frame(6, 0xF0, 0, b"12345678"))  # a PING with unknown flags set
    frames = await raw.frames(until=PingFrame)
    assert isinstance(frames[-1], PingFrame) and "ACK" in frames[-1].flags
    assert frames[-1].opaque_data == b"12345678"
    await raw.send(raw.headers(1, "/after"))
    frames = await raw.frames(until=DataFrame)
    assert isinstance(frames[-1], DataFrame) and frames[-1].data == b"up GET /after"
    raw.close()


@pytest.mark.parametrize(("frame", "name"), [
    (SettingsFrame(0).serialize(), "SETTINGS"),
    (PingFrame(0, b"12345678").serialize(), "PING"),
])
async def test_a_settings_or_ping_flood_gets_enhance_your_calm(
        h2: Setup, frame: bytes, name: str) -> None:
    raw = await Raw.connect(h2.port)
    await raw.send(frame * 3000)
    goaway = await raw.goaway()
    assert goaway.error_code == ENHANCE_YOUR_CALM
    assert f"{name} flood" in goaway.additional_data.decode()
    await noticed(h2, f"{name} flood")
    await noticed(h2, "sent GOAWAY ENHANCE_YOUR_CALM")
    await served(h2)


async def test_rapid_reset_gets_enhance_your_calm(h2: Setup) -> None:
    """CVE-2023-44487: streams opened and reset at once, over and over."""
    raw = await Raw.connect(h2.port)
    burst = b"".join(raw.headers(2 * n + 1) + RstStreamFrame(2 * n + 1, 8).serialize()
                     for n in range(1500))
    await raw.send(burst)
    goaway = await raw.goaway()
    assert goaway.error_code == ENHANCE_YOUR_CALM
    assert "stream reset flood" in goaway.additional_data.decode()
    await noticed(h2, "stream reset flood")
    await served(h2)


async def test_headers_over_the_limit_get_enhance_your_calm(h2: Setup) -> None:
    """SETTINGS_MAX_HEADER_LIST_SIZE is 64 KiB: a bigger list ends the connection (the HPACK
    state it shares with the client cannot be trusted after a block that was not decoded)."""
    raw = await Raw.connect(h2.port)
    block = raw.encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                                (":path", "/"), ("x-big", "a" * 70000)])
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    frames = HeadersFrame(1, chunks[0], flags=["END_STREAM"]).serialize()
    for n, chunk in enumerate(chunks[1:], 2):
        flags = ["END_HEADERS"] if n == len(chunks) else []
        frames += ContinuationFrame(1, chunk, flags=flags).serialize()
    await raw.send(frames)
    goaway = await raw.goaway()
    assert goaway.error_code == ENHANCE_YOUR_CALM
    await noticed(h2, "request headers over the limit")
    await served(h2)


async def test_a_header_block_that_never_ends_times_out(h2: Setup) -> None:
    raw = await Raw.connect(h2.port)
    block = raw.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    await raw.send(HeadersFrame(1, block, flags=["END_STREAM"]).serialize())  # no END_HEADERS
    goaway = await raw.goaway()
    assert goaway.error_code == ENHANCE_YOUR_CALM
    assert b"without END_HEADERS" in goaway.additional_data
    await noticed(h2, "a header block without END_HEADERS for 0.5s")
    await served(h2)


async def test_an_idle_connection_is_closed_with_no_error(h2: Setup) -> None:
    raw = await Raw.connect(h2.port)  # the preface, SETTINGS and its ACK, then nothing
    goaway = await raw.goaway()
    assert goaway.error_code == NO_ERROR
    assert goaway.additional_data == b"idle for 0.5s"
    assert await raw.reader.read() == b""
    await served(h2)


async def test_a_client_that_sends_nothing_gets_settings_timeout(h2: Setup) -> None:
    raw = await Raw.connect(h2.port, greet=False)
    goaway = await raw.goaway()
    assert goaway.error_code == SETTINGS_TIMEOUT
    await noticed(h2, "no HTTP/2 preface and SETTINGS acknowledgement in 0.5s")
    await served(h2)


async def test_streams_beyond_the_limit_are_refused_and_the_connection_goes_on(
        h2: Setup) -> None:
    raw = await Raw.connect(h2.port)
    limit = h2limits.DEFAULT.max_streams
    await raw.send(b"".join(raw.headers(2 * n + 1, "/slow") for n in range(limit + 1)))
    frames = await raw.frames(until=RstStreamFrame)
    reset = frames[-1]
    assert isinstance(reset, RstStreamFrame)
    assert (reset.stream_id, reset.error_code) == (2 * limit + 1, REFUSED_STREAM)
    await noticed(h2, f"more than {limit} concurrent streams")
    h2.up.gate.set()  # before the good client's call: it queues for the upstream's slots
    answered: set[int] = set()
    while len(answered) < limit:
        frames = await raw.frames(until=DataFrame)
        assert frames, "the connection ended"
        if "END_STREAM" in frames[-1].flags:
            answered.add(frames[-1].stream_id)
    assert answered == {2 * n + 1 for n in range(limit)}
    await raw.send(raw.headers(2 * limit + 3, "/fine"))  # a new stream fits again
    frames = await raw.frames(until=DataFrame)
    assert (frames[-1].stream_id, frames[-1].data) == (2 * limit + 3, b"up GET /fine")
    await served(h2)
    raw.close()
