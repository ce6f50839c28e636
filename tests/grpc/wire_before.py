"""wire.py's decode_raw as it was before its loop was tightened, kept to check the new one
against (tests/grpc/test_codec.py): the records must not change."""

from __future__ import annotations

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
    `budget` holds how many more fields may be read, all levels together."""
    pos = 0
    end = len(data)
    while pos < end:
        budget[0] -= 1
        if budget[0] < 0:
            raise Budget(f"more than {MAX_FIELDS} fields; the rest is not shown")
        at = pos
        key = data[pos]
        if key < 0x80:  # (a one-byte varint, as most keys are: read here)
            pos += 1
        else:
            key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {at}")
        if wire == VARINT:
            if pos < end and data[pos] < 0x80:
                value = data[pos]
                pos += 1
            else:
                value, pos = _varint(data, pos)
            out.append({"field": number, "type": "varint", "value": value})
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError(f"field {number}: a fixed64 runs past the end at byte {at}")
            value = int.from_bytes(data[pos:pos + 8], "little")
            pos += 8
            out.append({"field": number, "type": "fixed64", "value": value})
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError(f"field {number}: a fixed32 runs past the end at byte {at}")
            value = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
            out.append({"field": number, "type": "fixed32", "value": value})
        elif wire == LEN:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise WireError(
                    f"field {number}: {size} bytes announced at byte {at}, {end - pos} left"
                )
            out.append(_guess(number, data[pos:pos + size], depth, budget))
            pos += size
        else:
            raise WireError(f"field {number}: wire type {wire} at byte {at} is not supported")


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


def _text(chunk: bytes) -> str | None:
    """`chunk` as UTF-8 text without control characters (tab and newlines aside)."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any((ord(ch) < 0x20 and ch not in "\t\n\r") or ord(ch) == 0x7F for ch in text):
        return None
    return text
