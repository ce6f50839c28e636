"""Schema-less protobuf decoding, like `protoc --decode_raw`: field numbers and wire types,
nested messages and strings guessed. Never raises on garbage: what parsed comes back with an
error saying where it stopped.

Each field is a dict: {"field": 1, "type": T, "value": V} where T is
`varint` (an int), `fixed64` / `fixed32` (ints, as unsigned), `string` (text), `bytes` (hex)
or `message` (a list of fields)."""

from __future__ import annotations

import re
from typing import Any

MAX_DEPTH = 32
MAX_FIELDS = 4000  # fields read (tries included) per message: bounds the work on the loop
VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    """The bytes are not a protobuf message."""


class Budget(WireError):
    """The message has more fields than are decoded for display."""


def decode_raw(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The fields of `data` read as a message, and None; or those read before the bytes
    stopped making sense, and why."""
    fields: list[dict[str, Any]] = []
    try:
        _parse(data, 0, fields, [MAX_FIELDS])
    except WireError as exc:
        return fields, str(exc)
    return fields, None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError(f"a varint runs past the end at byte {pos}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise WireError(f"a varint longer than 10 bytes at byte {pos}")


def _parse(data: bytes, depth: int, out: list[dict[str, Any]], budget: list[int]) -> None:
    """Fields of `data` appended to `out` as they are read (so a failure keeps them);
    `budget` holds how many more fields may be read, all levels together.

    One-byte keys, varints and lengths (most of them) are read in the loop, without a call;
    longer ones through `_varint`."""
    pos = 0
    end = len(data)
    append = out.append
    while pos < end:
        left = budget[0] = budget[0] - 1
        if left < 0:
            raise Budget(f"more than {MAX_FIELDS} fields; the rest is not shown")
        at = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(data, pos)
        wire = key & 7
        if key < 8:  # (field number 0)
            raise WireError(f"field number 0 at byte {at}")
        if wire == VARINT:
            if pos < end and data[pos] < 0x80:
                value = data[pos]
                pos += 1
            else:
                value, pos = _varint(data, pos)
            append({"field": key >> 3, "type": "varint", "value": value})
        elif wire == LEN:
            if pos < end and data[pos] < 0x80:
                size = data[pos]
                pos += 1
            else:
                size, pos = _varint(data, pos)
            if pos + size > end:
                raise WireError(f"field {key >> 3}: {size} bytes announced at byte {at}, "
                                f"{end - pos} left")
            append(_guess(key >> 3, data[pos:pos + size], depth, budget))
            pos += size
        elif wire in (FIXED64, FIXED32):
            width, name = (8, "fixed64") if wire == FIXED64 else (4, "fixed32")
            if pos + width > end:
                raise WireError(f"field {key >> 3}: a {name} runs past the end at byte {at}")
            append({"field": key >> 3, "type": name,
                    "value": int.from_bytes(data[pos:pos + width], "little")})
            pos += width
        else:
            raise WireError(f"field {key >> 3}: wire type {wire} at byte {at} is not supported")


def _guess(number: int, chunk: bytes, depth: int, budget: list[int]) -> dict[str, Any]:
    """A length-delimited field: a nested message, text, or bytes."""
    text = _text(chunk)
    if chunk and depth < MAX_DEPTH and (text is None or chunk[0] < 0x20):
        nested: list[dict[str, Any]] = []
        try:
            _parse(chunk, depth + 1, nested, budget)
        except Budget:
            raise
        except WireError:
            pass
        else:
            return {"field": number, "type": "message", "value": nested}
    if text is not None:
        return {"field": number, "type": "string", "value": text}
    return {"field": number, "type": "bytes", "value": chunk.hex()}


# control characters but tab and newlines (as bytes: in UTF-8, only ASCII is below 0x80)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(chunk: bytes) -> str | None:
    """`chunk` as UTF-8 text without control characters (tab and newlines aside)."""
    if _CONTROL.search(chunk) is not None:
        return None
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None


def iter_fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a message read flat: varints and fixed values as
    ints, length-delimited ones as their bytes; WireError when `data` is not a message."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if pos + width > end:
                raise WireError(f"field {number} runs past the end")
            value, pos = int.from_bytes(data[pos:pos + width], "little"), pos + width
        elif wire == LEN:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise WireError(f"field {number} runs past the end")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise WireError(f"field {number}: wire type {wire} is not supported")
        out.append((number, wire, value))
    return out


def string_field(number: int, text: str) -> bytes:
    """One length-delimited field, encoded."""
    return _encode_varint(number << 3 | LEN) + _encode_varint(len(text.encode())) + text.encode()


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
