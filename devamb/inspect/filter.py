"""Filter expressions over recorded exchanges, in the spirit of mitmproxy's `~m POST & ~c 500`.

Terms (ARG is a bare word or a quoted string, "…" or '…', where `\\"` and `\\\\` escape):

    ~m METHOD   method, case-insensitive regex matching the whole method (`~m "GET|HEAD"`)
    ~u REGEX    the path (with query) or the upstream URL; a bare word means `~u word`
    ~c CODE     status: `~c 404`, or a class `~c 5xx`
    ~s SERVICE  service name, regex matching the whole name
    ~t TARGET   target name, regex matching the whole name
    ~h REGEX    any request or response header line `name: value` (~hq request, ~hs response)
    ~b REGEX    either body preview, as UTF-8 text (~bq request, ~bs response)
    ~e          the exchange failed: its `error` is set (a 5xx answer alone is not an error;
                use `~c 5xx`, or `~e | ~c 5xx`)
    ~grpc REGEX a gRPC call whose `/pkg.Service/Method` the regex finds (`~grpc Greeter/Say`)
    ~gs CODE    a gRPC call that ended with the status: a name (any case) or a number
                (`~gs UNAVAILABLE`, `~gs 14`)
    ~cmd REGEX  a Redis command (protocol: redis) whose name the regex matches whole, any case
                (`~cmd GET`, `~cmd "CLIENT SETNAME"`)
    ~d DURATION duration compared with `>`, `>=`, `<`, `<=` or `=`: `~d >500ms`, `~d <2s`;
                units ms (default), s, m; a bare duration means `>=` (also `~dur`)
    ~sql REGEX  a PostgreSQL statement whose text the regex finds (`~sql "from orders"`)
    ~sqlstate RE a PostgreSQL statement that failed with that SQLSTATE (`~sqlstate 40001`)
    ~err        the same as `~e`

Combine with `!` (not), `&` (and; also implied between adjacent terms) and `|` (or), in that order
of precedence, and parentheses. Regexes are "smart case": case-insensitive unless they contain an
upper-case letter. An empty expression matches everything. Quote regexes that contain spaces,
parentheses, `&` or `|`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devamb.inspect.filter_terms import (
    COMPARE,
    FLAGS,
    OPERATORS,
    And,
    Duration,
    FilterError,
    MatchAll,
    Node,
    Not,
    Or,
    Url,
)

__all__ = ["FilterError", "Node", "compile_filter", "parse_filter"]


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "op" | "word" | "(" | ")" | "!" | "&" | "|" | "end"
    value: str
    column: int
    quoted: bool = False


_SYMBOLS = "()!&|"
_WORD_END = re.compile(r"[\s()&|]")
_OPERATOR = re.compile(r"~([A-Za-z]*)")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SYMBOLS:
            tokens.append(_Token(ch, ch, i + 1))
            i += 1
        elif ch in "\"'":
            value, end = _read_quoted(text, i)
            tokens.append(_Token("word", value, i + 1, quoted=True))
            i = end
        elif ch == "~":
            match = _OPERATOR.match(text, i)
            if match is None or not match.group(1):
                raise FilterError("expected an operator name after '~'", i + 1)
            tokens.append(_Token("op", match.group(1), i + 1))
            i = match.end()
        else:
            boundary = _WORD_END.search(text, i)
            stop = boundary.start() if boundary else n
            tokens.append(_Token("word", text[i:stop], i + 1))
            i = stop
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the string quoted at `start`; returns its value and the index after the closing quote.

    Only `\\<quote>` and `\\\\` are escapes, so regex escapes such as `\\d` survive unchanged.
    """
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterError("unterminated quoted string", start + 1)


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        if self.token.kind == "end":
            return MatchAll()
        node = self.parse_or()
        token = self.token
        if token.kind == ")":
            raise FilterError("unbalanced ')': no '(' to close", token.column)
        if token.kind != "end":  # pragma: no cover - parse_or consumes everything else
            raise FilterError(f"unexpected {token.value!r}", token.column)
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while self.token.kind == "|":
            self.advance()
            children.append(self.parse_and(after="'|'"))
        return children[0] if len(children) == 1 else Or(children)

    def parse_and(self, after: str | None = None) -> Node:
        children = [self.parse_not(after)]
        while True:
            if self.token.kind == "&":
                self.advance()
                children.append(self.parse_not("'&'"))
            elif self.token.kind in ("op", "word", "!", "("):
                children.append(self.parse_not())
            else:
                break
        return children[0] if len(children) == 1 else And(children)

    def parse_not(self, after: str | None = None) -> Node:
        if self.token.kind == "!":
            self.advance()
            return Not(self.parse_not("'!'"))
        return self.parse_term(after)

    def parse_term(self, after: str | None) -> Node:
        token = self.token
        if token.kind == "(":
            self.advance()
            if self.token.kind == ")":
                raise FilterError("empty parentheses", self.token.column)
            node = self.parse_or()
            if self.token.kind != ")":
                raise FilterError("unbalanced '(': no ')' closes it", token.column)
            self.advance()
            return node
        if token.kind == "word":
            self.advance()
            return Url(token.value, token.column)
        if token.kind == "op":
            return self.parse_operator()
        where = f" after {after}" if after else ""
        if token.kind == "end":
            raise FilterError(f"expected a filter{where}", token.column)
        raise FilterError(f"expected a filter{where}, found {token.value!r}", token.column)

    def parse_operator(self) -> Node:
        op = self.advance()
        if op.value in FLAGS:
            return FLAGS[op.value]()
        factory = OPERATORS.get(op.value)
        if factory is None:
            known = ", ".join(f"~{name}" for name in sorted([*OPERATORS, *FLAGS]))
            raise FilterError(f"unknown operator ~{op.value} (known: {known})", op.column)
        arg = self.token
        if arg.kind != "word":
            raise FilterError(f"~{op.value} needs an argument", arg.column)
        self.advance()
        value = arg.value
        if factory is Duration and not arg.quoted and value in COMPARE:
            number = self.token
            if number.kind == "word":  # `~d > 500ms`
                self.advance()
                value += number.value
        return factory(value, arg.column)


def parse_filter(text: str) -> Node:
    """Parse an expression into a tree; raises FilterError with a 1-based column."""
    return _Parser(text).parse()


def compile_filter(text: str) -> Node:
    """A predicate over Exchange records (regexes compiled once); `str()` shows its tree."""
    return parse_filter(text)
