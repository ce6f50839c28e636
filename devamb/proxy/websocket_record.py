"""What a WebSocket session said, for the record: frames followed without being held.

The relay (websocket.py) passes bytes through untouched; a `FrameRecorder` per direction reads
them afterwards and adds text and binary payloads (unmasked, inflated) to the exchange's body
previews, and each message (text, binary, close, ping, pong) to its message log.
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING

from devamb.inspect.exchange import MESSAGE_PREVIEW, WsMessage

if TYPE_CHECKING:
    from devamb.inspect.exchange import BodyPreview, MessageLog

MAX_FRAME = 2**31  # a frame longer than this is taken for garbage (recording stops)
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: removed by the sender, put back to inflate

_DATA_OPCODES = frozenset({0x0, 0x1, 0x2})  # continuation, text, binary
_CONTROL_OPCODES = frozenset({0x8, 0x9, 0xA})  # close, ping, pong


class FrameRecorder:
    """Follows one direction's WebSocket frames and adds text and binary payloads to `preview`.

    Fed whatever bytes arrive, split anywhere; nothing is buffered but a frame header (at most
    14 bytes). Payloads are unmasked and (with permessage-deflate) inflated only while the
    preview has room; after that only their sizes are counted (a deflated message's as sent, so
    that a deflate bomb costs nothing). A stream that stops looking like WebSocket frames is not
    recorded further (`active` turns False); feeding never raises.
    """

    __slots__ = (
        "_compressed", "_control", "_control_opcode", "_cut", "_data_frame", "_fin", "_head",
        "_in_message", "_inflater", "_kept", "_mask", "_message_size", "_offset", "_opcode",
        "_remaining", "_room", "active", "deflate", "direction", "messages", "preview",
    )

    def __init__(self, preview: BodyPreview, *, deflate: bool = False,
                 messages: MessageLog | None = None, direction: str = "upstream") -> None:
        self.preview = preview
        self.deflate = deflate
        self.messages = messages  # each message, when given
        self.direction = direction
        self.active = True
        self._room = min(MESSAGE_PREVIEW, preview.limit) if messages is not None else 0
        self._opcode = 0  # of the message under way
        self._message_size = 0
        self._kept = bytearray()  # the message's preview
        self._cut = False  # ... is not all of it
        self._control = bytearray()  # a control frame's payload (at most 125 bytes)
        self._control_opcode = 0
        self._head = bytearray()
        self._remaining = 0  # payload bytes of the current frame still to come
        self._mask: bytes | None = None
        self._offset = 0  # payload bytes of the current frame seen (for the mask's phase)
        self._data_frame = False
        self._fin = False
        self._in_message = False  # a fragmented text/binary message is under way
        self._compressed = False  # ... and it is deflated
        self._inflater: zlib._Decompress | None = zlib.decompressobj(-15) if deflate else None

    def feed(self, data: bytes) -> None:
        if not self.active:
            return
        try:
            self._feed(memoryview(data))
        except Exception:  # a bug or a case not foreseen: the relay must not suffer for it
            self.active = False

    def _feed(self, view: memoryview) -> None:
        pos, end = 0, len(view)
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                if self._data_frame:
                    self._payload(view[pos : pos + take])
                elif self._room:
                    piece = view[pos : pos + take]
                    self._control += self._unmask(piece) if self._mask else piece
                self._offset += take
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._frame_end()
            elif self._head or end - pos < 14:  # a header that may be cut: gather it first
                pos = self._header(view, pos)
            else:  # the whole header is here (at most 14 bytes): read it in place
                size = self._header_size(view[pos], view[pos + 1])
                if size is None:
                    self.active = False
                else:
                    self._start_frame(view, pos)
                    pos += size
            if not self.active:
                return

    def _header(self, view: memoryview, pos: int) -> int:
        """Gather header bytes from `view` at `pos`; start the frame once the header is whole."""
        head = self._head
        while True:
            want = 2 if len(head) < 2 else self._header_size(head[0], head[1])
            if want is None:  # the first two bytes say this is not a frame
                self.active = False
                return pos
            if len(head) >= want:
                break
            piece = view[pos : pos + want - len(head)]
            if not piece:
                return pos  # the rest of the header comes with the next bytes
            head += piece
            pos += len(piece)
        self._start_frame(head, 0)
        head.clear()
        return pos

    def _header_size(self, b0: int, b1: int) -> int | None:
        """The whole header's size, known from its first two bytes (None: not a frame)."""
        opcode, rsv = b0 & 0x0F, b0 & 0x70
        length = b1 & 0x7F
        if opcode in _CONTROL_OPCODES:
            if rsv or not b0 & 0x80 or length > 125:  # control frames are whole, short, plain
                return None
        elif opcode not in _DATA_OPCODES or rsv & 0x30:
            return None
        elif (rsv and not (self.deflate and opcode)) or (opcode == 0) != self._in_message:
            return None  # RSV1 marks a deflated message; a continuation needs one under way
        extra = 2 if length == 126 else 8 if length == 127 else 0
        return 2 + extra + (4 if b1 & 0x80 else 0)

    def _start_frame(self, head: bytearray | memoryview, at: int) -> None:
        b0, b1 = head[at], head[at + 1]
        length = b1 & 0x7F
        at += 2
        if length == 126:
            length = int.from_bytes(head[at : at + 2])
            at += 2
        elif length == 127:
            length = int.from_bytes(head[at : at + 8])
            at += 8
            if length > MAX_FRAME:
                self.active = False
                return
        self._mask = bytes(head[at : at + 4]) if b1 & 0x80 else None
        self._offset = 0
        self._remaining = length
        opcode = b0 & 0x0F
        self._data_frame = opcode in _DATA_OPCODES
        if self._data_frame:
            self._fin = bool(b0 & 0x80)
            if opcode:  # the first frame of a message
                self._in_message = True
                self._compressed = bool(b0 & 0x40)
                self._opcode, self._message_size, self._cut = opcode, 0, False
                self._kept = bytearray()
                inflater = self._inflater
                if self._compressed and inflater is not None and inflater.eof:
                    self._inflater = zlib.decompressobj(-15)  # the sender ended its stream
        else:
            self._control, self._control_opcode = bytearray(), opcode
        if not length:
            self._frame_end()

    def _frame_end(self) -> None:
        if self._data_frame and self._fin:
            if self._compressed and self._inflater is not None and not self._inflater.eof:
                self._inflate(DEFLATE_TAIL, count_rest=False)
            if self.messages is not None:
                self._message(self._opcode, self._message_size, bytes(self._kept),
                              self._cut or (self._compressed and self._inflater is None),
                              self._compressed)
            self._in_message = self._compressed = False
        elif not self._data_frame and self.messages is not None:
            control = bytes(self._control)
            self._message(self._control_opcode, self._offset, control[: self._room],
                          len(control) > self._room, False)

    def _message(self, opcode: int, size: int, preview: bytes, cut: bool,
                 compressed: bool) -> None:
        assert self.messages is not None
        self.messages.add(WsMessage(self.direction, opcode, size, preview, time.time(), cut,
                                    compressed))

    def _keep(self, data: bytes | memoryview) -> None:
        """Add to the message's preview what fits in it."""
        room = self._room - len(self._kept)
        if len(data) > room:
            self._cut = True
            data = data[: max(room, 0)]
        self._kept += data

    def _payload(self, chunk: memoryview) -> None:
        preview = self.preview
        self._message_size += len(chunk)
        if self._compressed:
            if self._inflater is None:
                preview.add(chunk)  # not inflated any more: counted as it came
                self._cut = True
            else:
                self._inflate(self._unmask(chunk) if self._mask else chunk, count_rest=True)
            return
        room = preview.limit - len(preview.data)
        keep = min(len(chunk), max(room, self._room - len(self._kept)))
        if keep <= 0:
            preview.add(chunk)  # counted only: no room left to keep it
            if self._room:
                self._cut = True
            return
        plain = self._unmask(chunk[:keep]) if self._mask else chunk[:keep]
        preview.add(plain)  # the preview keeps what fits and counts the rest
        preview.add(chunk[keep:])
        if self._room:
            self._keep(plain)
            if keep < len(chunk):
                self._cut = True

    def _unmask(self, chunk: memoryview) -> bytes:
        size = len(chunk)
        if not size:
            return b""
        phase = self._offset % 4
        key = self._mask[phase:] + self._mask[:phase]  # type: ignore[index]
        keys = (key * (size // 4 + 1))[:size]
        return (int.from_bytes(chunk, "little") ^ int.from_bytes(keys, "little")).to_bytes(
            size, "little"
        )

    def _inflate(self, data: bytes | memoryview, *, count_rest: bool) -> None:
        """Inflate into the preview's room; once it is full, stop inflating for good."""
        preview = self.preview
        inflater = self._inflater
        room = preview.limit - len(preview.data)
        if inflater is None or room <= 0:
            self._inflater = None
            self._cut = True
            if count_rest:
                preview.add(data)
            return
        try:
            out = inflater.decompress(data, room)
        except zlib.error:
            self.active = False
            return
        preview.add(out)
        if self._room:
            self._keep(out)
        if len(preview.data) >= preview.limit:
            self._inflater = None
            if count_rest:
                preview.add(inflater.unconsumed_tail)
