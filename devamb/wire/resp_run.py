"""Pipelined commands and their replies in the common form, read in one pass in C.

A pipeline is mostly short commands (`*2\r\n$3\r\nGET\r\n$7\r\nuser:42\r\n`...). `Run.count`
matches such a chunk whole with one regular expression and counts its commands, without an
object per command or argument (hiredis makes a list and a bytes object for each: most of a
pipelined command's cost). The match is exact, the parse Redis makes: each length prefix is a
branch of a digit trie whose leaf takes exactly that many bytes and the CRLF after them. It
takes arrays of 1 to `MAX_ARGS` bulk strings of up to `MAX_SIZE` bytes without a `*` in them
(so every `*` in the chunk starts a command: `bytes.count` counts them), whose first argument
is none of the `excluded` command names (any case). Anything else (a longer argument, an
inline command, a command cut at the chunk's end, an excluded one) it leaves to the general
reader (resp_read.py).

`whole_replies` checks the same way that a server's chunk is a given number of whole replies
of one common kind: simple ones other than errors, or bulk strings without a CR in them (each
then ends one line, or two: `bytes.count` of CRLFs counts them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from devamb.wire.resp_read import FAST_CHUNK

MAX_SIZE = 99  # bytes of an argument (a trie of 3-digit lengths is ten times as large)
MAX_ARGS = 9  # arguments of a command


class Run:
    """Counts runs of whole common-form commands (`count`); compiled on first use (~0.06 s)."""

    __slots__ = ("_excluded", "_pattern")

    def __init__(self, excluded: Iterable[bytes]) -> None:
        self._excluded = sorted(excluded)
        self._pattern: re.Pattern[bytes] | None = None

    def count(self, data: bytes) -> int:
        """How many commands `data` holds when it is two or more whole common-form commands
        and nothing else; 0 otherwise."""
        count = data.count(b"*")
        if count < 2:
            return 0
        pattern = self._pattern or self._compile()
        return count if pattern.fullmatch(data) is not None else 0

    def _compile(self) -> re.Pattern[bytes]:
        first, arg = _bulk(rb"[^*]", self._excluded), _bulk(rb"[^*]")
        commands = [b"%d\r\n" % n + first + (b"(?:%s){%d}" % (arg, n - 1) if n > 3 else
                                            arg * (n - 1))  # (written out: no repeat to count)
                    for n in (2, 3, 1, *range(4, MAX_ARGS + 1))]  # (the most common first)
        # possessive (`++`): a command's parse is the only one, nothing is tried again
        self._pattern = re.compile(rb"(?:\*(?:" + b"|".join(commands) + rb"))++")
        return self._pattern


SIMPLE = re.compile(rb"(?:[+:][^\r\n]*\r\n)++")  # status and integer replies
_bulks: re.Pattern[bytes] | None = None  # bulk strings without a CR (compiled on first use)


def whole_replies(data: bytes, count: int) -> bool:
    """`data` is `count` whole replies: status and integer ones, or bulk strings of up to
    MAX_SIZE bytes without a CR."""
    global _bulks
    if len(data) > FAST_CHUNK:  # (`Reader.heads` reads it again when a record is built)
        return False
    lines = data.count(b"\r\n")  # (a status or an integer is one line, a bulk string two)
    if lines == count:
        return SIMPLE.fullmatch(data) is not None
    if lines != 2 * count:
        return False
    if _bulks is None:
        _bulks = re.compile(rb"(?:" + _bulk(rb"[^\r]") + rb")++")
    return _bulks.fullmatch(data) is not None


def _bulk(value: bytes, excluded: list[bytes] | None = None) -> bytes:
    """A bulk string of 0 to MAX_SIZE bytes of `value`, none of `excluded` (any case), as a
    digit trie: `$` `1` `6` `\r\n` then exactly 16 bytes (each branch starts with its own
    literal byte, which the matcher checks before it tries the branch)."""

    def leaf(size: int) -> bytes:
        names = [name for name in excluded or () if len(name) == size]
        guard = rb"(?!(?i:%s)\r\n)" % b"|".join(map(re.escape, names)) if names else b""
        return rb"\r\n" + guard + (value + b"{%d}" % size if size else b"") + rb"\r\n"

    def node(digits: str) -> bytes:
        branches = [leaf(int(digits))] if digits else []
        if digits != "0":  # (no leading zero)
            branches += [digit.encode() + node(digits + digit) for digit in "0123456789"
                         if int(digits + digit) <= MAX_SIZE]
        return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"

    return rb"\$" + node("")
