"""HPACK with memory: hpack's Encoder and Decoder, remembering the header blocks they made or
read while their dynamic table stays the same.

A relay sends and receives the same header lists again and again (one client's requests, one
upstream's answers). Once a list's fields are all in the dynamic table, encoding it changes
nothing and gives the same bytes every time, and a block of indexed fields decodes to the
same list: both are kept, keyed by the list (or the block), and forgotten as soon as the
table changes (an entry added or evicted, a size update). hpack does the work on every miss,
so what goes on the wire is what hpack would have sent. Half of the relay's h2 time was spent
in HPACK before (bench/h2hotpath.py).

A block decoded for h2conn's HEADERS step is kept as the `Fields` of its list (`fields`), and a
list that carries its Fields (h2frames.BytesPairs) has its block found by that object, not by
hashing the list again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import hpack
from hpack.table import HeaderTable

from devamb.proxy.h2frames import BytesPairs, Fields

KEEP = 64  # header lists (or blocks) remembered per table state
LONGEST = 512  # bytes of a block worth remembering (indexed fields are a byte or two each)
# RFC 9113 8.2.2: never sent on HTTP/2 (h2's normalize_outbound_headers drops them too)
CONNECTION_HEADERS = frozenset((b"connection", b"proxy-connection", b"keep-alive",
                                b"transfer-encoding", b"upgrade"))
# kept out of the table (credentials open to compression attacks), as h2 does
SECURE = frozenset((b"authorization", b"proxy-authorization"))


class CountingTable(HeaderTable):
    """A header table that counts its changes (`generation`)."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


def normalized(headers: Iterable[Any]) -> list[Any]:
    """What h2's normalize_outbound_headers makes of a header list (lower-case names, no
    surrounding whitespace, no connection headers, credentials never indexed), in one pass."""
    out: list[Any] = []
    for header in headers:
        name = header[0].lower()
        value = header[1].strip()
        if name in CONNECTION_HEADERS:
            continue
        if name in SECURE or (name == b"cookie" and len(value) < 20) or (
                isinstance(header, hpack.HeaderTuple) and not header.indexable):
            out.append(hpack.NeverIndexedHeaderTuple(name, value))
        else:
            out.append((name, value))
    return out


class Encoder(hpack.Encoder):
    """hpack's encoder, normalizing as h2 would (h2's own normalizing is turned off: see
    h2conn) and remembering the blocks of lists whose encoding left the table as it was."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: CountingTable = CountingTable()
        self._kept: dict[tuple[Any, ...], bytes] = {}
        self._by_fields: dict[Fields, bytes] = {}  # (by the object: see h2frames.Fields)
        self._at = 0  # the table's generation the kept blocks are good for

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if table.generation != self._at:
            self._kept.clear()
            self._by_fields.clear()
            self._at = table.generation
        if huffman and type(headers) is BytesPairs:
            fields = headers._fields
            if fields is not None and fields.length == len(headers):
                return self.encode_fields(fields)
        try:
            key = (huffman, *headers)
        except TypeError:  # a dict, say: not a list of pairs
            return super().encode(headers, huffman)
        block = self._kept.get(key) if not table.resized else None
        if block is not None:
            return block
        block = super().encode(normalized(key[1:]), huffman)
        if table.generation == self._at and len(self._kept) < KEEP:
            self._kept[key] = block
        return block

    def encode_fields(self, fields: Fields) -> bytes:
        """`encode(fields.pairs)` (huffman), the block kept by the Fields object."""
        table = self.header_table
        if table.generation != self._at:
            self._kept.clear()
            self._by_fields.clear()
            self._at = table.generation
        block = self._by_fields.get(fields) if not table.resized else None
        if block is not None:
            return block
        block = super().encode(normalized(fields.pairs), True)
        if table.generation == self._at and len(self._by_fields) < KEEP:
            self._by_fields[fields] = block
        return block


class Decoder(hpack.Decoder):
    """hpack's decoder, remembering what blocks that left the table as it was decoded to."""

    def __init__(self, max_header_list_size: int = hpack.hpack.DEFAULT_MAX_HEADER_LIST_SIZE
                 ) -> None:
        super().__init__(max_header_list_size)
        self.header_table: CountingTable = CountingTable()
        self._kept: dict[tuple[bytes, bool], list[Any]] = {}
        self._fields: dict[bytes, Fields] = {}  # (fields: by block)
        self._state: tuple[int, int, int] = (0, 0, 0)

    def _check_state(self) -> tuple[int, int, int]:
        """The table's generation and limits; what was kept is forgotten when they changed."""
        state = (self.header_table.generation, self.max_header_list_size,
                 self.max_allowed_table_size)
        if state != self._state:
            self._kept.clear()
            self._fields.clear()
            self._state = state
        return state

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        state = self._check_state()
        key = (bytes(data), raw)
        headers = self._kept.get(key)
        if headers is not None:
            return list(headers)
        headers = list(super().decode(data, raw))
        if (self.header_table.generation == state[0] and len(data) <= LONGEST
                and len(self._kept) < KEEP):
            self._kept[key] = headers
            return list(headers)
        return headers

    def fields(self, data: bytes) -> Fields:
        """`decode(data, raw=True)` as the Fields of the list (the same object for the same
        block while the table stays the same): hpack's errors as decode raises them."""
        state = self._check_state()
        key = data if type(data) is bytes else bytes(data)
        found = self._fields.get(key)
        if found is not None:
            return found
        found = Fields(super().decode(key, True))
        if (self.header_table.generation == state[0] and len(key) <= LONGEST
                and len(self._fields) < KEEP):
            self._fields[key] = found
        return found
