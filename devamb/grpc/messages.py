"""One gRPC message as the record shows it: JSON with a schema, else the raw wire decode."""

from __future__ import annotations

import zlib
from typing import Any

from devamb.grpc.schema import Schema
from devamb.grpc.wire import decode_raw

MAX_INFLATED = 1024 * 1024  # a gzip message is inflated up to this for display


def inflate(data: bytes, encoding: str | None) -> tuple[bytes | None, str | None]:
    """A compressed message's bytes (gzip only), or None and why not."""
    if encoding != "gzip":
        return None, f"compressed with {encoding or 'an unnamed encoding'}; not decoded"
    try:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        return None, f"gzip: {exc}"
    if inflater.unconsumed_tail:
        return None, f"larger than {MAX_INFLATED} bytes inflated; not decoded"
    return out, None


def fill(item: dict[str, Any], data: bytes | None, type_name: str | None,
         schema: Schema | None, encoding: str | None) -> None:
    """`item`, one message's record (an item of `notes["grpc"]["messages"]`: GrpcTap makes it
    with its size, compressed flag, and type, json, raw and error None), filled in place from
    the message's bytes `data` (None: too large to keep)."""
    item["type"] = type_name
    if data is None:
        item["error"] = f"{item['size']} bytes; too large to keep"
        return
    if item["compressed"]:
        data, item["error"] = inflate(data, encoding)
        if data is None:
            return
    if type_name is None or schema is None:  # (no schema: the raw decode alone, at once)
        item["raw"], item["error"] = decode_raw(data)
        return
    decode(item, data, type_name, schema)


def decode(item: dict[str, Any], data: bytes, type_name: str | None,
           schema: Schema | None) -> None:
    """Fill `item`'s json (or raw and error) from the message bytes `data`."""
    if type_name is not None and schema is not None:
        from google.protobuf.message import DecodeError  # loaded by the schema already

        try:
            item["json"] = schema.to_json(type_name, data)
            return
        except (DecodeError, RuntimeError, ValueError, KeyError) as exc:
            item["error"] = f"not a {type_name}: {exc or type(exc).__name__}"
    raw, error = decode_raw(data)
    item["raw"] = raw
    if error is not None:
        item["error"] = f"{item['error']}; {error}" if item["error"] else error
