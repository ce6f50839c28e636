"""A simple Query's text cut into its statements, as the server cuts it.

Only used while command-level faults are armed (a fault acts on one statement of a
multi-statement Query). Semicolons inside string literals ('…' with '' doubled; E'…' with
backslash escapes, and every '…' when `standard_conforming_strings` is off), quoted
identifiers ("…"), dollar quotes ($$…$$, $tag$…$tag$), -- and nested /* */ comments do not end
a statement; nor do those inside parentheses or inside a `CREATE [OR REPLACE]
FUNCTION|PROCEDURE … BEGIN ATOMIC … END` body (counted as psql counts them). Works on the
bytes as they came: every delimiter is ASCII, which no byte of a UTF-8 character is.
"""

from __future__ import annotations

import re

# what opens a literal or a comment, and what counts in a statement's nesting: both readers'
_QUOTED = rb"""
  | (?P<line>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<estr>[eE]')
  | (?P<str>')
  | (?P<ident>")
  | (?P<dollar>\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$)
"""
_NESTING = rb"""
  | (?P<semi>;)
  | (?P<open>\()
  | (?P<close>\))
"""
_TOKEN = re.compile(rb"""
    (?P<space>\s+)
""" + _QUOTED + rb"""
  | (?P<word>[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)
""" + _NESTING + rb"""
  | (?P<other>[0-9.]+|[^\s'"$;()A-Za-z_\x80-\xff/-]+|.)
""", re.X | re.S)
# the same, with words, whitespace and whatever cannot start another token run together (one
# match for most of a statement), for statements that do not start with CREATE (where the
# words do not count)
_RUN = re.compile(rb"""
    (?P<run>(?:[^'"$;()/\-A-Za-z_\x80-\xff]+|(?![eE]')[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*
              |-(?!-)|/(?!\*))+)
""" + _QUOTED + _NESTING + rb"""
  | (?P<other>.)
""", re.X | re.S)
_CREATE = re.compile(rb"\s*create\b", re.I)
_STRING_END = re.compile(rb"(?:[^']|'')*'")
_ESTRING_END = re.compile(rb"(?:[^'\\]|''|\\.)*'", re.S)
_IDENT_END = re.compile(rb'(?:[^"]|"")*"')
_COMMENT_MARK = re.compile(rb"/\*|\*/")
_ROUTINES = (b"create function", b"create procedure", b"create or replace function",
             b"create or replace procedure")

Span = tuple[int, int]


def statements(sql: bytes, backslash_quotes: bool = False) -> list[Span]:
    """The [start, end) of each statement in `sql` (without its `;`, from its first token to
    its last: whitespace and comments around it left out); empty statements (`;;`, only
    comments) are not statements. An unterminated literal or comment runs to the end."""
    spans: list[Span] = []
    n = len(sql)
    at = 0
    start = end = -1  # the statement's first and last significant bytes so far
    parens = depth = 0  # parentheses, BEGIN ATOMIC bodies open
    words: list[bytes] = []  # the statement's first words (is it CREATE FUNCTION?)
    token = _RUN.match  # (_TOKEN.match in a statement that starts with CREATE)
    while at < n:
        found = token(sql, at)
        assert found is not None  # (`other` matches any byte)
        kind = found.lastgroup
        stop = found.end()
        if kind == "run":
            text = found.group()
            kept = len(text.rstrip())
            if kept:  # not only whitespace
                if start < 0:
                    if _CREATE.match(sql, at):
                        token = _TOKEN.match  # its words count: read it again word by word
                        continue
                    start = at + len(text) - len(text.lstrip())
                end = at + kept
            at = stop
            continue
        if kind == "space" or kind == "line":
            at = stop
            continue
        if kind == "block":
            at = _comment_end(sql, stop)
            continue
        if kind == "semi":
            if parens == 0 and depth == 0:
                if start >= 0:
                    spans.append((start, end))
                start = end = -1
                words = []
                token = _RUN.match
            at = stop
            continue
        if start < 0:
            start = at
        if kind == "str":
            stop = _literal_end(_ESTRING_END if backslash_quotes else _STRING_END, sql, stop)
        elif kind == "estr":
            stop = _literal_end(_ESTRING_END, sql, stop)
        elif kind == "ident":
            stop = _literal_end(_IDENT_END, sql, stop)
        elif kind == "dollar":
            close = sql.find(found.group(), stop)
            stop = n if close < 0 else close + len(found.group())
        elif kind == "open":
            parens += 1
        elif kind == "close":
            parens = max(parens - 1, 0)
        elif kind == "word":
            depth = _atomic(found.group().lower(), words, depth)
        end = at = stop
    if start >= 0:
        spans.append((start, end))
    return spans


def _literal_end(pattern: re.Pattern[bytes], sql: bytes, at: int) -> int:
    found = pattern.match(sql, at)
    return len(sql) if found is None else found.end()


def _comment_end(sql: bytes, at: int) -> int:
    """Past the `*/` closing a comment opened before `at` (comments nest)."""
    nested = 1
    for mark in _COMMENT_MARK.finditer(sql, at):
        nested += 1 if mark.group() == b"/*" else -1
        if nested == 0:
            return mark.end()
    return len(sql)


def _atomic(word: bytes, words: list[bytes], depth: int) -> int:
    """BEGIN (ATOMIC) and CASE open a body in a CREATE FUNCTION/PROCEDURE, END closes one."""
    if word == b"begin" or word == b"case":
        head = b" ".join(words)
        if any(head.startswith(routine) for routine in _ROUTINES):
            depth += 1
    elif word == b"end" and depth > 0:
        depth -= 1
    if len(words) < 4:
        words.append(word)
    return depth
