"""RESP2 encoding of commands and replies."""

from __future__ import annotations

from collections.abc import Sequence

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NIL = b"$-1\r\n"
EMPTY_ARRAY = b"*0\r\n"


def command(args: Sequence[bytes]) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


def error(message: str) -> bytes:
    """An error reply; line breaks in the message become spaces."""
    text = message.replace("\r", " ").replace("\n", " ")
    return b"-" + text.encode("utf-8", "replace") + b"\r\n"


def integer(value: int) -> bytes:
    return b":%d\r\n" % value


def bulk(value: bytes | None) -> bytes:
    return NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: Sequence[bytes]) -> bytes:
    """An array of already encoded replies."""
    return b"*%d\r\n" % len(items) + b"".join(items)
