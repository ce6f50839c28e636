"""Inline commands ("SET k "a b"\\r\\n") split into arguments as redis-server does.

Redis splits an inline line with `sdssplitargs`: blanks separate arguments; "double quotes"
take the escapes \\xHH, \\n, \\r, \\t, \\b, \\a (any other escaped byte is itself); 'single
quotes' take only \\' ; a closing quote must be followed by a blank or the end of the line, and
an unclosed quote is "unbalanced quotes in request". A NUL ends the line (it is a C string).
"""

from __future__ import annotations

import re

# Lines without these split like bytes.split(): the common case, in C.
_SPECIAL = re.compile(rb"[\"'\x00\x0b\x0c]")
_BLANKS = re.compile(rb"[ \t\n\r\x0b\x0c]*")  # isspace()
# An argument: an unquoted run (ended by space, tab, CR, LF), then at most one quoted part,
# which ends the argument.
_ARGUMENT = re.compile(
    rb"""([^ \t\n\r"']*)(?:"((?:\\x[0-9a-fA-F]{2}|\\.|[^"\\])*)"|'((?:\\'|\\(?!')|[^'\\])*)')?""",
    re.DOTALL,
)
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_CONTROL = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"a": b"\a"}
_SPACE = frozenset(b" \t\n\r\x0b\x0c")


class UnbalancedQuotes(Exception):
    """A quote is not closed, or a closing quote is followed by more than a blank."""


def split_inline(line: bytes) -> list[bytes]:
    """The arguments of one inline command line (its CRLF or LF already removed)."""
    if _SPECIAL.search(line) is None:
        return line.split()
    line = line.split(b"\x00", 1)[0]
    args: list[bytes] = []
    n = len(line)
    pos = _BLANKS.match(line).end()  # type: ignore[union-attr]
    while pos < n:
        match = _ARGUMENT.match(line, pos)
        assert match is not None  # every group is optional
        pos = match.end()
        plain, double, single = match.groups()
        if double is not None:
            value = plain + _ESCAPE.sub(_unescape, double)
        elif single is not None:
            value = plain + single.replace(b"\\'", b"'")
        else:
            value = plain
        if pos < n and line[pos] not in _SPACE:  # an unclosed quote, or `"a"b`
            raise UnbalancedQuotes("unbalanced quotes in request")
        args.append(value)
        pos = _BLANKS.match(line, pos).end()  # type: ignore[union-attr]
    return args


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if len(code) == 3:
        return bytes([int(code[1:], 16)])
    return _CONTROL.get(code, code)
