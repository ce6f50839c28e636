"""gRPC length-prefixed messages: 1 byte compressed flag, 4 bytes big-endian length, the
message. `Splitter` takes DATA as it comes and yields whole messages; a message larger than
`limit` is counted and sized but not kept (its bytes are skipped as they pass)."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = 5
DEFAULT_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    size: int  # the message's length (without its prefix)
    compressed: bool
    data: bytes | None  # None: larger than the limit, not kept


def frame(message: bytes, compressed: bool = False) -> bytes:
    """`message` with its prefix, as it goes on the wire."""
    return bytes([1 if compressed else 0]) + len(message).to_bytes(4, "big") + message


class Splitter:
    __slots__ = ("_buffer", "_compressed", "_keep", "_left", "_size", "limit")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._buffer = bytearray()  # a prefix being read, or a kept message's bytes so far
        self._left = -1  # bytes of the current message still to come; -1: reading a prefix
        self._size = 0
        self._compressed = False
        self._keep = True

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished message (or prefix) arrived: the stream ended mid-message."""
        return self._left >= 0 or bool(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._left < 0 and not self._buffer and len(data) >= PREFIX:
            size = int.from_bytes(data[1:PREFIX], "big")  # (one whole message, as a unary
            if len(data) == PREFIX + size and size <= self.limit:  # call's DATA: at once)
                return [Frame(size, bool(data[0] & 1), bytes(data[PREFIX:]))]
        out: list[Frame] = []
        view = memoryview(data)
        while view:
            if self._left < 0:
                need = PREFIX - len(self._buffer)
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) < PREFIX:
                    break
                self._compressed = bool(self._buffer[0] & 1)
                self._size = self._left = int.from_bytes(self._buffer[1:5], "big")
                self._keep = self._size <= self.limit
                self._buffer.clear()
            take = min(self._left, len(view))
            if self._keep:
                self._buffer += view[:take]
            view = view[take:]
            self._left -= take
            if self._left == 0:
                kept = bytes(self._buffer) if self._keep else None
                out.append(Frame(self._size, self._compressed, kept))
                self._buffer.clear()
                self._left = -1
        return out
