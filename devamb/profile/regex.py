"""Regexes written by users (mock matchers, path patterns, traffic filters), run by RE2.

Python's `re` backtracks: `(a+)+$` against forty a's and a `!` runs for minutes, and a pattern
runs on the event loop, so one request could freeze every service and the control API. RE2
(google-re2) matches in time linear in the text, whatever the pattern. The price is RE2's syntax:
no backreferences (`\\1`, `(?P=name)`), no lookaround (`(?=…)`, `(?!…)`, `(?<=…)`, `(?<!…)`) and
no atomic groups or possessive repeats; those are refused with the offset where they start.
Two Python spellings are translated: `\\Z` (end of text; RE2 writes `\\z`) and `\\N{NAME}`.

Texts are matched as UTF-8 bytes (`surrogateescape` for undecodable header bytes), so a `str`
with lone surrogates never raises.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import re2

Regex = Any  # re2._Regexp: the binding ships no type hints

_UNSUPPORTED = (  # (prefix after '(', what it is)
    ("?<=", "lookbehind (?<=…)"),
    ("?<!", "negative lookbehind (?<!…)"),
    ("?=", "lookahead (?=…)"),
    ("?!", "negative lookahead (?!…)"),
    ("?P=", "a backreference (?P=name)"),
    ("?>", "an atomic group (?>…)"),
)
_WHY = "devamb runs regexes with RE2, in linear time, which has no backreferences or lookaround"


class RegexError(ValueError):
    """A pattern RE2 cannot run; `offset` (0-based, in the pattern) is where, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        if self.offset is None:
            return self.message
        return f"{self.message} (at character {self.offset + 1} of the pattern)"


def compile_regex(
    pattern: str, *, ignore_case: bool = False, multiline: bool = False, latin1: bool = False
) -> Regex:
    """Compile `pattern` for RE2; raises RegexError. `latin1`: for searching raw bytes, one
    byte one character (the pattern must then be ASCII)."""
    translated = translate(pattern)
    options = re2.Options()
    options.log_errors = False  # RE2 would print each error to stderr, i.e. the engine log
    options.case_sensitive = not ignore_case
    source = ("(?m)" if multiline else "") + translated
    text: str | bytes = source
    if latin1:
        options.encoding = re2.Options.Encoding.LATIN1
        text = source.encode("latin-1")
    try:
        return re2.compile(text, options)
    except re2.error as exc:
        raise _explain(exc, pattern) from None


def escape(text: str) -> str:
    """`text` as a pattern that matches exactly it."""
    return str(re2.escape(text))


def fullmatch(regex: Regex, text: str) -> bool:
    return regex.fullmatch(_utf8(text)) is not None


def search(regex: Regex, text: str) -> bool:
    return regex.search(_utf8(text)) is not None


def groups(regex: Regex, text: str) -> dict[str, str] | None:
    """The named groups of a whole-text match, or None when it does not match."""
    found = regex.fullmatch(_utf8(text))
    if found is None:
        return None
    return {
        name: (value or b"").decode("utf-8", "surrogateescape")
        for name, value in found.groupdict().items()
    }


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _explain(exc: re2.error, pattern: str) -> RegexError:
    raw = exc.args[0] if exc.args else str(exc)
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    what, _, fragment = message.partition(": ")
    offset = pattern.find(fragment) if fragment else -1
    return RegexError(what or message, offset if offset >= 0 else None)


def translate(pattern: str) -> str:
    """`\\Z` -> `\\z`, `\\N{NAME}` -> the character; refuse what RE2 lacks, with its offset."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "N" and pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 3)
                name = pattern[i + 3 : end] if end > 0 else ""
                try:
                    out.append(re2.escape(unicodedata.lookup(name)))
                except KeyError:
                    raise RegexError(f"unknown character name \\N{{{name}}}", i) from None
                i = end + 1
                continue
            if not in_class and nxt == "Z":
                out.append("\\z")
            elif not in_class and nxt.isdigit() and nxt != "0":
                raise RegexError(f"a backreference \\{nxt} is not supported: {_WHY}", i)
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            start = i + 1
            start += pattern.startswith("^", start)
            start += pattern.startswith("]", start)  # a ']' first in a class is literal
            out.append(pattern[i:start])
            i, in_class = start, True
            continue
        elif ch == "(":
            for prefix, what in _UNSUPPORTED:
                if pattern.startswith(prefix, i + 1):
                    raise RegexError(f"{what} is not supported: {_WHY}", i)
        out.append(ch)
        i += 1
    return "".join(out)
