"""One direction of a PostgreSQL connection cut into messages, holding at most a few KiB.

Each message is handed to `on_message(type, kept, length)` when its last byte has passed:
`kept` is the body's first `keep(type)` bytes (the rest was only counted), `length` the whole
body's size. Untyped messages (the client's startup, SSLRequest, CancelRequest) come with type
0 while `typed` is False; a single byte answer (the server's reply to SSLRequest) with length
-1 while `single` is set. A length prefix below 4 raises `Malformed`; a huge one is skipped
as it passes (2 GiB of body costs a counter, not memory).

A type set as `counted` (the server's DataRow: a result's rows) is not handed out one by one:
`on_count(n)` says how many passed, before the next message is handed out and at the end of
each chunk (a result of thousands of rows costs a loop step each, not a call).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_LENGTH = struct.Struct("!I").unpack_from


class Malformed(ValueError):
    pass


class Splitter:
    __slots__ = ("body", "counted", "end", "head", "keep", "left", "length", "limits",
                 "on_count", "on_message", "single", "type", "typed", "want")

    def __init__(self, typed: bool, keep: Callable[[int], int],
                 on_message: Callable[[int, bytes, int], None]) -> None:
        self.typed = typed
        self.single = False
        self.keep = keep
        # per type, the length prefix up to which a body is kept whole (`keep` + 4; 0: none)
        self.limits = [keep(kind) + 4 if keep(kind) else 0 for kind in range(256)]
        self.on_message = on_message
        self.head = bytearray()
        self.body = bytearray()
        self.type = 0
        self.left = -1  # body bytes still to come; -1: reading a header
        self.length = 0
        self.want = 0
        self.end = 0  # offset in the chunk being fed just past the message handed out
        self.counted = -1  # a type only counted (see the module docstring); -1: none
        self.on_count: Callable[[int], None] | None = None

    @property
    def between(self) -> bool:
        """No message is partly read."""
        return self.left < 0 and not self.head

    def feed(self, data: bytes | bytearray) -> None:
        i, n = 0, len(data)
        if (self.typed and self.left < 0 and not self.head and not self.single
                and type(data) is bytes):
            i = self._whole(data, n)
        while i < n:
            if self.left < 0:
                if self.single:
                    self.single = False
                    i += 1
                    self.end = i
                    self.on_message(data[i - 1], b"", -1)
                    continue
                size = 5 if self.typed else 4
                head = self.head
                if not head and n - i >= size:  # the common case: a whole header in the chunk
                    raw = data[i:i + size]
                    i += size
                else:
                    take = min(size - len(head), n - i)
                    head += data[i:i + take]
                    i += take
                    if len(head) < size:
                        return
                    raw = bytes(head)
                    head.clear()
                if size == 5:
                    self.type = raw[0]
                    length = int.from_bytes(raw[1:5])
                else:
                    self.type = 0
                    length = int.from_bytes(raw[0:4])
                if length < 4:
                    raise Malformed(f"message length {length} (below 4)")
                size = length - 4
                want = min(self.keep(self.type), size)
                if i + size <= n:  # the common case: the whole body is in this chunk
                    body = bytes(data[i:i + want]) if want else b""
                    i += size
                    self.end = i
                    self._hand_out(self.type, body, size)
                    continue
                self.length = self.left = size
                self.want = want
                self.body = bytearray()
            take = min(self.left, n - i)
            room = self.want - len(self.body)
            if room > 0:
                self.body += data[i:i + min(room, take)]
            i += take
            self.left -= take
            if self.left == 0:
                self.left = -1
                self.end = i
                self._hand_out(self.type, bytes(self.body), self.length)

    def _hand_out(self, kind: int, body: bytes, length: int) -> None:
        if kind == self.counted and self.on_count is not None:
            self.on_count(1)
        else:
            self.on_message(kind, body, length)

    def _whole(self, data: bytes, n: int) -> int:
        """The typed messages that are whole in `data` from its start (the common case, in
        one loop); the offset of the first that is not (or whose length is below 4: the
        message-by-message path raises). A handler must not change how this splitter reads
        (`typed`, `single`): the follower's only do that from the untyped startup."""
        i = 0
        kept, on_message, counted = self.limits, self.on_message, self.counted
        rows = 0
        while n - i >= 5:
            length = _LENGTH(data, i + 1)[0]
            end = i + 1 + length
            if end > n or length < 4:
                break
            kind = data[i]
            if kind == counted:
                rows += 1
                i = end
                continue
            if rows:
                self.on_count(rows)  # type: ignore[misc]
                rows = 0
            limit = kept[kind]
            start = i + 5
            i = self.end = end
            on_message(kind, (data[start:end] if length <= limit else
                              data[start:start + limit - 4]) if limit else b"", length - 4)
        if rows:
            self.end = i
            self.on_count(rows)  # type: ignore[misc]
        return i
