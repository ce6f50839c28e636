"""PostgreSQL message bodies: the fields devamb shows, and the few messages it writes itself."""

from __future__ import annotations

import struct

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608

TRANSACTION = {ord("I"): "idle", ord("T"): "in transaction", ord("E"): "failed"}
AUTH = {0: "ok", 2: "kerberos", 3: "cleartext", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}
ERROR_FIELDS = {"S": "severity", "V": "severity", "C": "sqlstate", "M": "message",
                "D": "detail", "H": "hint", "P": "position", "W": "where", "s": "schema",
                "t": "table", "c": "column", "n": "constraint"}
# Common type OIDs (pg_type) by name; others are shown as their number.
TYPES = {16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4",
         25: "text", 26: "oid", 114: "json", 142: "xml", 700: "float4", 701: "float8",
         790: "money", 1042: "bpchar", 1043: "varchar", 1082: "date", 1083: "time",
         1114: "timestamp", 1184: "timestamptz", 1186: "interval", 1266: "timetz",
         1700: "numeric", 2950: "uuid", 3802: "jsonb", 1000: "bool[]", 1005: "int2[]",
         1007: "int4[]", 1016: "int8[]", 1009: "text[]", 1015: "varchar[]", 2951: "uuid[]"}


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def cstrings(body: bytes, count: int) -> tuple[list[str], int]:
    """The first `count` NUL-terminated strings (fewer when the kept body ends first) and the
    offset after them."""
    out: list[str] = []
    at = 0
    for _ in range(count):
        end = body.find(b"\0", at)
        if end < 0:
            out.append(text(body[at:]))
            return out, len(body)
        out.append(text(body[at:end]))
        at = end + 1
    return out, at


def startup_params(body: bytes) -> dict[str, str]:
    parts = body[4:].split(b"\0")
    return {text(parts[i]): text(parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]}


def error_fields(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            name = ERROR_FIELDS.get(chr(part[0]))
            if name is not None and name not in fields:
                fields[name] = text(part[1:])
    return fields


def type_name(oid: int) -> str:
    return TYPES.get(oid, str(oid)) if oid else "unspecified"


def parse_types(body: bytes, at: int) -> list[int]:
    if len(body) < at + 2:
        return []
    count = int.from_bytes(body[at:at + 2])
    have = min(count, (len(body) - at - 2) // 4)
    return list(struct.unpack_from(f"!{have}I", body, at + 2)) if have else []


def bind_values(body: bytes, at: int, limit: int = 200) -> list[str | bytes | None]:
    """The bound values of a Bind body from `at` (the format codes), as far as it was kept:
    text values as text (cut at `limit`), binary ones as their size."""
    try:
        nformats = int.from_bytes(body[at:at + 2])
        formats = list(struct.unpack_from(f"!{nformats}h", body, at + 2))
        at += 2 + 2 * nformats
        count = int.from_bytes(body[at:at + 2])
        at += 2
    except struct.error:
        return []
    values: list[str | bytes | None] = []
    for i in range(count):
        if len(body) < at + 4:
            break
        size = int.from_bytes(body[at:at + 4], signed=True)
        at += 4
        if size < 0:
            values.append(None)
            continue
        binary = (formats[i] if nformats > 1 and i < nformats else
                  formats[0] if nformats == 1 else 0)
        raw = body[at:at + min(size, limit)]
        at += size
        if binary:
            values.append(bytes(raw) if size <= 8 else f"<{size} bytes binary>")
        else:
            shown = text(raw)
            values.append(shown + ("…" if size > limit else ""))
    return values


def message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4) + body


def error_response(sqlstate: str, text_: str, severity: str = "ERROR") -> bytes:
    body = b"".join(code + value.encode() + b"\0" for code, value in (
        (b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", text_),
    )) + b"\0"
    return message(b"E", body)


def raise_sql(sqlstate: str, text_: str) -> bytes:
    """A statement that makes the server itself raise `sqlstate` (fails its transaction).

    The message is an E'' literal (meaning the same whatever standard_conforming_strings is),
    `$` written as an escape so it cannot end the dollar-quoted body; the sqlstate is
    validated by the profile as 5 characters [0-9A-Z]."""
    escaped = (text_.replace("\0", "").replace("\\", "\\\\").replace("'", "''")
               .replace("$", "\\x24"))
    return (f"DO $devamb$ BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', "
            f"MESSAGE = E'{escaped}'; END $devamb$").encode()


def raise_query(sqlstate: str, text_: str) -> bytes:
    """A simple Query raising `sqlstate`."""
    return message(b"Q", raise_sql(sqlstate, text_) + b"\0")


def raise_extended(sqlstate: str, text_: str) -> bytes:
    """Parse, Bind, Execute of the unnamed statement raising `sqlstate`, then Flush: inside an
    extended-protocol unit the server raises it where the faulted statement stood, skips the
    rest up to the client's Sync and rolls the unit back, as after a real error. The server's
    ParseComplete and BindComplete to them are not the client's (the follower drops them)."""
    return (message(b"P", b"\0" + raise_sql(sqlstate, text_) + b"\0\0\0")
            + message(b"B", b"\0\0" + b"\0\0" * 3)
            + message(b"E", b"\0" + b"\0" * 4) + message(b"H", b""))


def ready_for_query(status: str) -> bytes:
    return message(b"Z", status.encode())


def terminate() -> bytes:
    return message(b"X", b"")


BINARY_FORMS = {"int2": "!h", "int4": "!i", "int8": "!q", "oid": "!I", "float4": "!f",
                "float8": "!d", "bool": "!?"}


def binary_value(type_: str, raw: bytes) -> str:
    """A small binary parameter as text when its type is a number or bool."""
    form = BINARY_FORMS.get(type_)
    if form is not None and struct.calcsize(form) == len(raw):
        return str(struct.unpack(form, raw)[0])
    return f"<{len(raw)} bytes binary>"
