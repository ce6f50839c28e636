"""The WebSocket relay on its own: the frame recorder, the handshake check, and whole sessions
through a minimal stand-in for the front end (front.py is not imported)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from devamb.inspect.exchange import MESSAGE_PREVIEW, BodyPreview, Exchange, MessageLog
from devamb.proxy.connection import reset
from devamb.proxy.errors import UpstreamFailed
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import StreamResponse
from devamb.proxy.websocket import relay_websocket, valid_handshake
from devamb.proxy.websocket_client import WebSocketClient, is_websocket
from devamb.proxy.websocket_record import FrameRecorder
from devamb.proxy.websocket_shape import FRAME_GATHER, split_frames
from tests.upstreams import HttpUpstream

MASK = b"\x37\xfa\x21\x3d"


def frame(
    payload: bytes,
    opcode: int = 0x1,
    *,
    fin: bool = True,
    mask: bytes | None = MASK,
    rsv1: bool = False,
) -> bytes:
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflated(message: bytes, compressor: zlib._Compress) -> bytes:
    data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def record(data: bytes, *, limit: int = 1 << 20, deflate: bool = False,
           pieces: list[int] | None = None) -> FrameRecorder:
    recorder = FrameRecorder(BodyPreview(limit), deflate=deflate, messages=MessageLog(),
                             direction="downstream")
    at = 0
    for cut in [*(pieces or []), len(data)]:
        recorder.feed(data[at:cut])
        at = cut
    return recorder


# -- the frame recorder ------------------------------------------------------------------------


def test_masked_text_and_binary_are_recorded_unmasked() -> None:
    recorder = record(frame(b"hello") + frame(b"\x00\x01\xff", 0x2))
    assert recorder.active
    assert bytes(recorder.preview.data) == b"hello\x00\x01\xff"
    assert recorder.preview.size == 8


def test_unmasked_frames_are_recorded_too() -> None:  # server frames, or a sloppy client
    recorder = record(frame(b"echo:hi", mask=None) + frame(b"cba", 0x2, mask=None))
    assert bytes(recorder.preview.data) == b"echo:hicba"


def test_control_frames_are_not_recorded() -> None:
    data = (frame(b"ping!", 0x9) + frame(b"a") + frame(b"", 0xA) + frame(b"b", 0x2)
            + frame(b"\x03\xe8bye", 0x8))
    recorder = record(data)
    assert recorder.active and bytes(recorder.preview.data) == b"ab"


@pytest.mark.parametrize("size", [125, 126, 300, 65535, 65536, 70_000])
@pytest.mark.parametrize("mask", [MASK, None], ids=["masked", "plain"])
def test_7_16_and_64_bit_lengths(size: int, mask: bytes | None) -> None:
    payload = os.urandom(size)
    recorder = record(frame(payload, 0x2, mask=mask) + frame(b"after", mask=mask))
    assert recorder.active
    assert bytes(recorder.preview.data) == payload + b"after"


def test_fragmented_message_with_a_ping_between() -> None:
    data = (frame(b"hel", 0x1, fin=False) + frame(b"!", 0x9) + frame(b"lo ", 0x0, fin=False)
            + frame(b"world", 0x0) + frame(b"next"))
    recorder = record(data)
    assert recorder.active and bytes(recorder.preview.data) == b"hello worldnext"


def stream(mask: bytes | None = MASK) -> bytes:
    return (
        frame(b"hi", mask=mask)
        + frame(b"x" * 200, 0x2, mask=mask)  # 16-bit length
        + frame(b"ping", 0x9, mask=mask)
        + frame(b"part1-", fin=False, mask=mask)
        + frame(b"", 0x0, fin=False, mask=mask)
        + frame(b"part2", 0x0, mask=mask)
        + frame(b"", 0x1, mask=mask)
        + frame(b"\x03\xe8", 0x8, mask=mask)
    )


STREAM = stream()
STREAM_PAYLOAD = b"hi" + b"x" * 200 + b"part1-part2"


@pytest.mark.parametrize("mask", [MASK, None], ids=["masked", "plain"])
def test_split_at_every_byte_boundary(mask: bytes | None) -> None:
    data = stream(mask)
    for cut in range(len(data) + 1):
        recorder = record(data, pieces=[cut])
        assert recorder.active, cut
        assert bytes(recorder.preview.data) == STREAM_PAYLOAD, cut


def test_byte_by_byte_and_in_two_cuts() -> None:
    byte_by_byte = record(STREAM, pieces=list(range(1, len(STREAM))))
    assert bytes(byte_by_byte.preview.data) == STREAM_PAYLOAD
    for first in range(0, len(STREAM), 7):
        for second in range(first, len(STREAM), 13):
            recorder = record(STREAM, pieces=[first, second])
            assert bytes(recorder.preview.data) == STREAM_PAYLOAD, (first, second)


def test_64_bit_length_split_inside_the_header() -> None:
    payload = os.urandom(70_000)
    data = frame(payload, 0x2)
    for cut in range(1, 15):  # 2 + 8 + 4 header bytes
        recorder = record(data, pieces=[cut, cut + 1, 20_000])
        assert bytes(recorder.preview.data) == payload, cut


def test_a_frame_larger_than_the_preview_keeps_a_prefix_and_counts_all() -> None:
    payload = os.urandom(100_000)
    for pieces in ([], [10], [50_000], list(range(1000, 100_000, 4093))):
        recorder = record(frame(payload, 0x2) + frame(b"more"), limit=64 * 1024, pieces=pieces)
        assert recorder.active
        assert bytes(recorder.preview.data) == payload[: 64 * 1024]
        assert recorder.preview.size == 100_004 and recorder.preview.truncated


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff" * 64,  # reserved bits and opcode 15
        b"\x83\x80" + MASK,  # reserved opcode 3
        b"\x81\xff" + b"\x7f" * 8,  # a 2**63-ish length
        b"\x82\xff" + struct.pack("!Q", 2**31 + 1) + MASK,  # just over the limit
        b"\x89\xfe\x01\x00" + MASK,  # a ping longer than 125
        b"\x09\x80" + MASK,  # a fragmented ping
        b"\x80\x82" + MASK + b"ab",  # a continuation without a message
        b"\xc1\x82" + MASK + b"ab",  # RSV1 without permessage-deflate
        b"\xa1\x82" + MASK + b"ab",  # RSV2
    ],
)
def test_garbage_stops_recording_without_raising(garbage: bytes) -> None:
    data = frame(b"good") + garbage + frame(b"ignored")
    for cut in range(len(data) + 1):
        recorder = record(data, pieces=[cut])
        assert not recorder.active
        assert bytes(recorder.preview.data) == b"good"


def test_a_new_message_inside_a_fragmented_one_is_garbage() -> None:
    recorder = record(frame(b"a", fin=False) + frame(b"b") + frame(b"c", 0x0))
    assert not recorder.active and bytes(recorder.preview.data) == b"a"


def test_random_bytes_never_raise() -> None:
    for _ in range(200):
        recorder = FrameRecorder(BodyPreview(1024), deflate=True)
        data = os.urandom(4096)
        for at in range(0, len(data), 97):
            recorder.feed(data[at : at + 97])
        assert len(recorder.preview.data) <= 1024


def test_permessage_deflate_is_inflated_with_context_takeover() -> None:
    compressor = zlib.compressobj(wbits=-15)
    messages = [b"hello hello hello", b"hello hello hello again", b"x" * 5000]
    data = b"".join(frame(deflated(m, compressor), rsv1=True) for m in messages)
    data += frame(b"plain")  # an uncompressed message between compressed ones
    data += frame(deflated(b"hello again", compressor), 0x2, rsv1=True, mask=None)
    expected = b"".join(messages) + b"plain" + b"hello again"
    for cut in range(0, len(data) + 1, 3):
        recorder = record(data, deflate=True, pieces=[cut])
        assert recorder.active, cut
        assert bytes(recorder.preview.data) == expected, cut
        assert recorder.preview.size == len(expected)


def test_permessage_deflate_fragmented_message() -> None:
    body = deflated(b"a long message " * 20, zlib.compressobj(wbits=-15))
    data = (frame(body[:10], rsv1=True, fin=False) + frame(b"", 0x9)
            + frame(body[10:], 0x0) + frame(b"!"))
    recorder = record(data, deflate=True)
    assert bytes(recorder.preview.data) == b"a long message " * 20 + b"!"


def test_permessage_deflate_without_context_takeover() -> None:
    messages = [b"abcabcabc", b"abcabcabc"]
    data = b"".join(
        frame(deflated(m, zlib.compressobj(wbits=-15)), rsv1=True) for m in messages
    )
    assert bytes(record(data, deflate=True).preview.data) == b"".join(messages)


def test_a_deflate_bomb_is_inflated_only_as_far_as_the_preview() -> None:
    big = b"\x00" * 20_000_000
    body = deflated(big, zlib.compressobj(wbits=-15))
    data = frame(body, 0x2, rsv1=True) + frame(deflated(b"later", zlib.compressobj(wbits=-15)),
                                               rsv1=True)
    recorder = record(data, limit=1000, deflate=True)
    assert recorder.active
    assert bytes(recorder.preview.data) == b"\x00" * 1000
    assert recorder.preview.truncated


def messages(recorder: FrameRecorder) -> list[tuple[str, int, bytes, bool]]:
    assert recorder.messages is not None
    return [(m.type, m.size, m.preview, m.truncated) for m in recorder.messages.items]


def test_each_message_is_recorded_with_its_opcode_size_and_preview() -> None:
    data = (frame(b"hello") + frame(b"\x00\x01\xff", 0x2) + frame(b"are you", 0x9)
            + frame(b"there", 0xA, mask=None) + frame(b"hello2")
            + frame(struct.pack("!H", 1000) + b"bye", 0x8))
    expected = [("text", 5, b"hello", False), ("binary", 3, b"\x00\x01\xff", False),
                ("ping", 7, b"are you", False), ("pong", 5, b"there", False),
                ("text", 6, b"hello2", False), ("close", 5, b"\x03\xe8bye", False)]
    for cut in range(len(data) + 1):  # wherever the bytes are split, the same messages
        recorder = record(data, pieces=[cut])
        assert messages(recorder) == expected, cut
        assert {m.direction for m in recorder.messages.items} == {"downstream"}  # type: ignore[union-attr]
    close = recorder.messages.items[-1].to_json()  # type: ignore[union-attr]
    assert (close["type"], close["code"], close["data"]) == ("close", 1000, "bye")
    binary = recorder.messages.items[1].to_json()  # type: ignore[union-attr]
    assert (binary["encoding"], base64.b64decode(binary["data"])) == ("base64", b"\x00\x01\xff")


def test_a_fragmented_message_is_one_message_after_the_ping_inside_it() -> None:
    data = frame(b"hello ", fin=False) + frame(b"", 0x9) + frame(b"world", 0x0) + frame(b"x")
    assert messages(record(data)) == [
        ("ping", 0, b"", False), ("text", 11, b"hello world", False), ("text", 1, b"x", False)
    ]


def test_a_long_message_keeps_a_bounded_preview_and_its_whole_size() -> None:
    payload = os.urandom(MESSAGE_PREVIEW * 3)
    for mask in (MASK, None):
        data = frame(payload, 0x2, mask=mask) + frame(b"next")
        assert messages(record(data, pieces=[700])) == [
            ("binary", len(payload), payload[:MESSAGE_PREVIEW], True), ("text", 4, b"next", False)
        ]
    # a body preview of 10 bytes bounds each message's preview too
    assert messages(record(frame(b"0123456789abc"), limit=10)) == [
        ("text", 13, b"0123456789", True)
    ]


def test_deflated_messages_are_recorded_inflated_and_a_bomb_is_cut() -> None:
    compressor = zlib.compressobj(wbits=-15)
    first, second = deflated(b"hello hello hello", compressor), deflated(b"again", compressor)
    data = frame(first, rsv1=True) + frame(second, rsv1=True, mask=None)
    recorder = record(data, deflate=True)
    assert messages(recorder) == [("text", len(first), b"hello hello hello", False),
                                  ("text", len(second), b"again", False)]
    assert all(m.compressed for m in recorder.messages.items)  # type: ignore[union-attr]
    bomb = deflated(b"\x00" * 20_000_000, zlib.compressobj(wbits=-15))
    (kind, size, preview, truncated), = messages(record(frame(bomb, 0x2, rsv1=True),
                                                         deflate=True))
    assert (kind, size, truncated) == ("binary", len(bomb), True)
    assert preview == b"\x00" * MESSAGE_PREVIEW


def test_messages_past_the_cap_are_counted_not_kept() -> None:
    log = MessageLog(limit=3)
    recorder = FrameRecorder(BodyPreview(), messages=log, direction="upstream")
    recorder.feed(b"".join(frame(f"m{i}".encode()) for i in range(5)))
    assert [m.preview for m in log.items] == [b"m0", b"m1", b"m2"] and log.dropped == 2
    assert bytes(recorder.preview.data) == b"m0m1m2m3m4"  # the body preview is as before


def test_bad_deflate_data_stops_recording() -> None:
    recorder = record(frame(b"\xff\xff\xff\xff\xff", rsv1=True) + frame(b"x"), deflate=True)
    assert not recorder.active


# -- frames cut for the faults -----------------------------------------------------------------


async def split(pieces: list[bytes], before_close=None) -> list[bytes]:  # type: ignore[no-untyped-def]
    async def source():  # type: ignore[no-untyped-def]
        for piece in pieces:
            yield piece

    return [chunk async for chunk in split_frames(source(), before_close)]


async def test_frames_come_out_one_a_chunk_wherever_the_bytes_were_cut() -> None:
    frames = [frame(b"a"), frame(b"b" * 200, 0x2, mask=None), frame(b"", 0x9),
              frame(b"c" * 70_000), frame(b"d")]
    data = b"".join(frames)
    for cut in (1, 2, 3, 7, 100, 1000, len(data)):
        pieces = [data[i : i + cut] for i in range(0, len(data), cut)]
        assert await split(pieces) == frames, cut
    many = [frame(b"%d" % i) for i in range(20_000)]  # many small frames in one read
    assert await split([b"".join(many)]) == many


async def test_a_long_frame_comes_in_pieces_and_garbage_passes_as_it_came() -> None:
    big = frame(os.urandom(FRAME_GATHER * 2 + 5), 0x2)
    out = await split([big[i : i + 65536] for i in range(0, len(big), 65536)] + [frame(b"z")])
    assert b"".join(out) == big + frame(b"z") and out[-1] == frame(b"z") and len(out) > 2
    junk = b"\x82\x7f" + b"\xff" * 8 + b"tail"  # a 64-bit length no frame has
    assert b"".join(await split([frame(b"ok"), junk, b"more"])) == frame(b"ok") + junk + b"more"


async def test_the_close_frame_waits_for_before_close() -> None:
    seen: list[str] = []

    async def before_close() -> None:
        seen.append("close")

    data = frame(b"x") + frame(struct.pack("!H", 1000), 0x8) + frame(b"y")
    out = [chunk async for chunk in split_frames(_tagged(data, seen), before_close)]
    assert b"".join(out) == data
    assert seen == ["read", "close"]  # before the close frame was passed, once


async def _tagged(data: bytes, seen: list[str]):  # type: ignore[no-untyped-def]
    seen.append("read")
    yield data


# -- the handshake -----------------------------------------------------------------------------


def handshake(**changes: str | None) -> CIMultiDict[str]:
    headers = CIMultiDict({
        "Host": "x",
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    })
    for name, value in changes.items():
        name = name.replace("_", "-")
        headers.popall(name, None)
        if value is not None:
            headers[name] = value
    return headers


def test_a_valid_handshake() -> None:
    assert valid_handshake("GET", handshake())
    assert valid_handshake("GET", handshake(Upgrade="WebSocket", Connection="upgrade"))


@pytest.mark.parametrize(
    ("method", "changes"),
    [
        ("POST", {}),
        ("GET", {"Upgrade": None}),
        ("GET", {"Upgrade": "h2c"}),
        ("GET", {"Connection": "keep-alive"}),
        ("GET", {"Connection": None}),
        ("GET", {"Sec_WebSocket_Version": "8"}),
        ("GET", {"Sec_WebSocket_Version": None}),
        ("GET", {"Sec_WebSocket_Key": None}),
        ("GET", {"Sec_WebSocket_Key": base64.b64encode(b"x" * 15).decode()}),
        ("GET", {"Sec_WebSocket_Key": "not base64!!"}),
        ("GET", {"Sec_WebSocket_Key": "dGhlIHNhbXBsZSBub25jZQ==\u00e9"}),
    ],
)
def test_invalid_handshakes(method: str, changes: dict[str, str | None]) -> None:
    assert not valid_handshake(method, handshake(**changes))


# -- whole sessions, through a stand-in for the front end --------------------------------------


class FakeFront(asyncio.Protocol):
    """Parses one request head, runs relay_websocket for it, and detaches as front.py will."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.detached = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer or self.relay.task is not None:
            return
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        method, path, _ = line.split(" ")
        headers: CIMultiDict[str] = CIMultiDict()
        for field in fields:
            name, _, value = field.partition(":")
            headers.add(name.strip(), value.strip())
        request = FrontRequest(self, method, path, (1, 1), CIMultiDictProxy(headers),
                               "127.0.0.1", upgrade=True)
        self.relay.start(request)

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...

    async def drain(self) -> None: ...

    async def send(self, *parts: bytes) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("client gone")
        self.transport.write(b"".join(parts))

    def detach(self, protocol: asyncio.Protocol) -> None:
        assert self.transport is not None and not self.detached
        self.detached = True
        leftover, self.buffer = self.buffer, b""
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if leftover:
            protocol.data_received(leftover)


class Relay:
    """A listening stand-in front end and what its one relay did."""

    def __init__(self, upstream_url: str, client: WebSocketClient) -> None:
        self.url = URL(upstream_url)
        self.client = client
        self.exchange = Exchange(1, "api", "a", "http", "127.0.0.1")
        self.task: asyncio.Task[StreamResponse] | None = None
        self.server: asyncio.Server | None = None
        self.front: FakeFront | None = None

    def start(self, request: FrontRequest) -> None:
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items()
            if k.lower() not in ("connection", "upgrade", "host")
        )
        headers["Host"] = self.url.raw_authority
        self.task = asyncio.get_running_loop().create_task(relay_websocket(
            self.client, request, self.url.with_path(request.raw_path), headers, self.exchange,
            timeout=2.0,
        ))
        self.task.add_done_callback(self._answer_failure)

    def _answer_failure(self, task: asyncio.Task[StreamResponse]) -> None:
        """What the front end does with UpstreamFailed: an error response, here a bare one."""
        front = self.front
        if task.cancelled() or front is None or front.transport is None:
            return
        failure = task.exception()
        if isinstance(failure, UpstreamFailed):
            front.transport.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % failure.status)
            front.transport.close()

    async def listen(self) -> str:
        def factory() -> FakeFront:
            self.front = FakeFront(self)
            return self.front

        self.server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def result(self) -> StreamResponse:
        assert self.task is not None
        return await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def relay(upstream: HttpUpstream) -> AsyncIterator[tuple[Relay, str]]:
    client = WebSocketClient()
    relay = Relay(upstream.url, client)
    url = await relay.listen()
    yield relay, url
    await client.close()
    if relay.task is not None and not relay.task.done():
        relay.task.cancel()
    relay.server.close()  # type: ignore[union-attr]


async def test_a_session_relays_both_ways_and_is_recorded(relay: tuple[Relay, str]) -> None:
    relay_, url = relay
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/ws", protocols=("chat",)) as ws,
    ):
        assert ws.protocol == "chat"
        await ws.send_str("hi")
        assert (await ws.receive_str(timeout=5)) == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive_bytes(timeout=5)) == b"cba"
        big = os.urandom(300_000)  # several socket buffers: backpressure on the way
        await ws.send_bytes(big)
        assert (await ws.receive_bytes(timeout=5)) == big[::-1]
    response = await relay_.result()
    assert response.status == 101 and response.detached and response.finished
    exchange = relay_.exchange
    assert exchange.status == 101 and exchange.error is None
    assert exchange.bytes_in == 5 + 300_000 and exchange.bytes_out == 10 + 300_000
    assert bytes(exchange.request_body.data[:5]) == b"hiabc"
    assert bytes(exchange.response_body.data[:10]) == b"echo:hicba"
    assert ("Upgrade", "websocket") in exchange.request_headers  # type: ignore[operator]
    assert any(k.lower() == "sec-websocket-accept" for k, _ in exchange.response_headers or [])


async def test_permessage_deflate_passes_through_and_is_recorded_inflated(
    relay: tuple[Relay, str],
) -> None:
    relay_, url = relay
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/ws", compress=15) as ws,
    ):
        assert ws.compress == 15  # the upstream accepted the client's offer, through the relay
        for _ in range(3):
            await ws.send_str("hello " * 50)
            assert (await ws.receive_str(timeout=5)) == "echo:" + "hello " * 50
    await relay_.result()
    assert bytes(relay_.exchange.request_body.data) == b"hello " * 150
    assert bytes(relay_.exchange.response_body.data) == (b"echo:" + b"hello " * 50) * 3


async def upgraded(
    url: str, first: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw client connection through the relay: upgrade request (plus `first` in the same
    packet), then the head that came back."""
    reader, writer = await asyncio.open_connection(*URL(url).raw_authority.split(":"))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" + first
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return reader, writer, head


async def test_a_client_that_does_not_read_stops_the_upstream_being_read(
    relay: tuple[Relay, str],
) -> None:
    """Backpressure both ways: with the client not reading, the proxy's buffers stay small."""
    relay_, url = relay
    reader, writer, _ = await upgraded(url)
    message, count = os.urandom(1 << 20), 48
    one = frame(message, 0x2, mask=b"\0\0\0\0")

    async def send() -> None:
        for _ in range(count):
            writer.write(one)
            await writer.drain()

    sending = asyncio.create_task(send())
    await asyncio.sleep(1.0)  # the echoes back up: client <- proxy <- upstream <- proxy
    [session] = relay_.client._sessions
    for side in (session.client, session.upstream):
        assert side.transport is not None
        assert side.transport.get_write_buffer_size() < 1 << 20
    received = 0
    while received < count * (len(message) + 10):
        chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert chunk
        received += len(chunk)
    await sending
    assert received == count * (len(message) + 10)
    assert relay_.exchange.bytes_in == relay_.exchange.bytes_out == count * len(message)
    writer.close()


async def test_frames_sent_with_the_upgrade_request_reach_the_upstream(
    relay: tuple[Relay, str],
) -> None:
    _, url = relay
    # The first frame in the same packet as the head: the front's "leftover".
    reader, writer, head = await upgraded(url, frame(b"early"))
    assert head.startswith(b"HTTP/1.1 101")
    answer = await asyncio.wait_for(reader.readexactly(2 + len("echo:early")), 5)
    assert answer == frame(b"echo:early", mask=None)
    writer.close()


async def test_garbage_from_the_client_is_passed_on_and_the_upstream_closes(
    relay: tuple[Relay, str],
) -> None:
    relay_, url = relay
    reader, writer, _ = await upgraded(url)
    writer.write(b"\xff" * 64)
    rest = await asyncio.wait_for(reader.read(), 5)
    assert not rest or rest[0] == 0x88  # the upstream's close frame, then the end
    response = await relay_.result()
    assert response.detached and relay_.exchange.status == 101
    writer.close()


async def test_a_client_reset_resets_the_upstream_and_ends_the_session(
    relay: tuple[Relay, str],
) -> None:
    relay_, url = relay
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"{url}/ws")
    await ws.send_str("x")
    assert (await ws.receive_str(timeout=5)) == "echo:x"
    reset(ws._response.connection.transport)  # type: ignore[union-attr]
    response = await relay_.result()
    assert response.detached
    assert relay_.exchange.error is not None and relay_.exchange.error.startswith("client")
    await session.close()


async def test_cancelling_the_handler_cuts_both_connections(relay: tuple[Relay, str]) -> None:
    relay_, url = relay
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/ws")
        await ws.send_str("x")
        assert (await ws.receive_str(timeout=5)) == "echo:x"
        assert relay_.task is not None
        relay_.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await relay_.task
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                                aiohttp.WSMsgType.CLOSE)


async def test_closing_the_client_ends_open_sessions(relay: tuple[Relay, str]) -> None:
    relay_, url = relay
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/ws")
        await ws.send_str("x")
        assert (await ws.receive_str(timeout=5)) == "echo:x"
        await relay_.client.close()
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE)
        assert (await relay_.result()).detached


async def test_a_refusing_upstream_is_a_502(relay: tuple[Relay, str]) -> None:
    relay_, url = relay
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{url}/status/403", timeout=aiohttp.ClientWSTimeout(5))
    with pytest.raises(UpstreamFailed) as failed:
        await relay_.result()
    assert failed.value.status == 502 and failed.value.code == "websocket-refused"
    assert failed.value.reason == "upstream refused: 403"


async def test_a_malformed_handshake_is_a_400_before_the_upstream_is_asked() -> None:
    exchange = Exchange(1, "api", "a", "http", "127.0.0.1")
    request = FrontRequest(FakeFront(None), "GET", "/ws", (1, 1),  # type: ignore[arg-type]
                           CIMultiDictProxy(handshake(Sec_WebSocket_Key="short")), None)
    assert is_websocket(request)
    with pytest.raises(UpstreamFailed) as failed:  # port 9 (discard) is never contacted
        await relay_websocket(WebSocketClient(), request, URL("http://127.0.0.1:9/ws"),
                              CIMultiDict(), exchange, 1.0)
    assert failed.value.status == 400 and failed.value.code == "bad-websocket-handshake"


async def test_an_unreachable_upstream_is_connect_failed() -> None:
    with socket_closed() as port:
        exchange = Exchange(1, "api", "a", "http", "127.0.0.1")
        request = FrontRequest(FakeFront(None), "GET", "/ws", (1, 1),  # type: ignore[arg-type]
                               CIMultiDictProxy(handshake()), None)
        with pytest.raises(UpstreamFailed) as failed:
            await relay_websocket(WebSocketClient(), request, URL(f"http://127.0.0.1:{port}/ws"),
                                  CIMultiDict(), exchange, 1.0)
    assert failed.value.status == 502 and failed.value.code == "connect-failed"
    assert failed.value.reason.startswith("websocket to 127.0.0.1: ")


async def test_an_upstream_that_never_answers_times_out() -> None:
    silent: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: silent.append(writer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = FrontRequest(FakeFront(None), "GET", "/ws", (1, 1),  # type: ignore[arg-type]
                           CIMultiDictProxy(handshake()), None)
    exchange = Exchange(1, "api", "a", "http", "127.0.0.1")
    with pytest.raises(UpstreamFailed) as failed:
        await relay_websocket(WebSocketClient(), request, URL(f"http://127.0.0.1:{port}/ws"),
                              CIMultiDict(), exchange, 0.2)
    for writer in silent:
        writer.close()
    server.close()
    assert failed.value.code == "connect-failed"
    assert failed.value.reason == "websocket to 127.0.0.1: no answer within 0.2s"


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
