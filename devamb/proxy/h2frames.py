"""hyperframe's and h2's per-frame helpers, made cheaper for a relay (installed by h2conn).

Same bytes and same frames, less Python per frame: a frame's flags are read and written
through its set of names at once (hyperframe asks its MutableSet per defined flag: ~47
`Flags.__contains__` calls per relayed gRPC call), and a header list that is all bytes pairs
already (what devamb sends) is not rebuilt by h2's `utf8_encode_headers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h2.stream
import h2.utilities
import hyperframe.flags
import hyperframe.frame

_HEADER = hyperframe.frame._STRUCT_HBBBL  # length (24 bits), type, flags, stream id
_utf8_encode_headers = h2.utilities.utf8_encode_headers


def serialize(self: hyperframe.frame.Frame) -> bytes:
    body = self.serialize_body()
    self.body_len = size = len(body)
    names = self.flags._flags
    flags = 0
    if names:
        for flag, bit in self.defined_flags:
            if flag in names:
                flags |= bit
    return _HEADER.pack((size >> 8) & 0xFFFF, size & 0xFF, self.type, flags,
                        self.stream_id & 0x7FFFFFFF) + body


def parse_flags(self: hyperframe.frame.Frame, flag_byte: int) -> hyperframe.flags.Flags:
    if flag_byte:
        names = self.flags._flags  # (the names are the frame's own defined flags: valid)
        for flag, bit in self.defined_flags:
            if flag_byte & bit:
                names.add(flag)
    return self.flags


def utf8_encode_headers(headers: Iterable[Any]) -> list[Any]:
    out = list(headers)
    for pair in out:
        if type(pair) is not tuple or type(pair[0]) is not bytes or type(pair[1]) is not bytes:
            return _utf8_encode_headers(out)  # text, or hpack's HeaderTuples: h2's own
    return out


def install() -> None:
    hyperframe.frame.Frame.serialize = serialize  # type: ignore[method-assign]
    hyperframe.frame.Frame.parse_flags = parse_flags  # type: ignore[method-assign]
    h2.stream.utf8_encode_headers = utf8_encode_headers
