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
    ~d DURATION duration compared with `>`, `>=`, `<`, `<=` or `=`: `~d >500ms`, `~d <2s`;
                units ms (default), s, m; a bare duration means `>=`

Combine with `!` (not), `&` (and; also implied between adjacent terms) and `|` (or), in that order
of precedence, and parentheses. Regexes are "smart case": case-insensitive unless they contain an
upper-case letter. An empty expression matches everything. Quote regexes that contain spaces,
parentheses, `&` or `|`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devamb.profile.regex import Regex, RegexError, compile_regex, fullmatch, search, translate

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange


class FilterError(ValueError):
    """A bad expression; `column` (1-based) points at the offending token."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"

    def caret(self, text: str) -> str:
        """The expression with a `^` under the offending column, for terminals."""
        return f"{text}\n{' ' * (self.column - 1)}^"


# --- the tree ---------------------------------------------------------------------------------


class Node:
    """A parsed expression: call it with an Exchange; `str()` gives its canonical form."""

    __slots__ = ()

    def __call__(self, exchange: Exchange) -> bool:
        raise NotImplementedError


class MatchAll(Node):
    __slots__ = ()

    def __call__(self, exchange: Exchange) -> bool:
        return True

    def __str__(self) -> str:
        return ""


class Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def __call__(self, exchange: Exchange) -> bool:
        return not self.child(exchange)

    def __str__(self) -> str:
        inner = str(self.child)
        return f"!({inner})" if isinstance(self.child, And | Or) else f"!{inner}"


class And(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)

    def __call__(self, exchange: Exchange) -> bool:
        return all(child(exchange) for child in self.children)

    def __str__(self) -> str:
        return " & ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


class Or(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)

    def __call__(self, exchange: Exchange) -> bool:
        return any(child(exchange) for child in self.children)

    def __str__(self) -> str:
        return " | ".join(str(c) for c in self.children)


def _quote(arg: str) -> str:
    """`arg` as the tokenizer reads it back: bare when it can be, else double-quoted."""
    if arg and not re.search(r"[\s()&|]", arg) and arg[0] not in "!~\"'":
        return arg
    escaped = re.sub(r'\\(?=["\\]|$)', r"\\\\", arg).replace('"', '\\"')
    return f'"{escaped}"'


def _smart_case(pattern: str) -> bool:
    """Ignore case unless the pattern has an upper-case letter (escapes aside)."""
    literal = re.sub(r"\\.", "", pattern)
    return not any(ch.isupper() for ch in literal)


class _Rex(Node):
    """A regex term. Patterns run on RE2 (profile.regex): linear time, so a filter cannot stall
    the engine's event loop on a body made to backtrack; no backreferences or lookaround."""

    __slots__ = ("pattern", "rex")
    code = ""
    ignore_case = False
    smart_case = True
    multiline = False

    def __init__(self, pattern: str, column: int) -> None:
        self.pattern = pattern
        self.rex = self._compile(pattern, column)

    def _compile(self, pattern: str, column: int, *, latin1: bool = False) -> Regex:
        ignore_case = self.ignore_case or (self.smart_case and _smart_case(pattern))
        try:
            return compile_regex(
                pattern, ignore_case=ignore_case, multiline=self.multiline, latin1=latin1
            )
        except RegexError as exc:
            raise FilterError(f"bad regex {pattern!r}: {exc}", column) from None

    def __str__(self) -> str:
        return f"~{self.code} {_quote(self.pattern)}"


class Method(_Rex):
    __slots__ = ()
    code = "m"
    ignore_case = True
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.method or "")


class Url(_Rex):
    __slots__ = ()
    code = "u"

    def __call__(self, exchange: Exchange) -> bool:
        rex = self.rex
        return bool(
            (exchange.path and search(rex, exchange.path))
            or (exchange.url and search(rex, exchange.url))
        )


class Service(_Rex):
    __slots__ = ()
    code = "s"
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.service)


class Target(_Rex):
    __slots__ = ()
    code = "t"
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.target)


class Header(_Rex):
    __slots__ = ()
    code = "h"
    request = True
    response = True

    def __call__(self, exchange: Exchange) -> bool:
        rex = self.rex
        for wanted, headers in (
            (self.request, exchange.request_headers),
            (self.response, exchange.response_headers),
        ):
            if wanted and headers and any(search(rex, f"{k}: {v}") for k, v in headers):
                return True
        return False


class RequestHeader(Header):
    __slots__ = ()
    code = "hq"
    response = False


class ResponseHeader(Header):
    __slots__ = ()
    code = "hs"
    request = False


class Body(_Rex):
    """Searches raw bytes (one byte one character) when the regex is ASCII, so binary bodies
    need no decoding; else the body decoded as UTF-8 text."""

    __slots__ = ("rex_bytes",)
    code = "b"
    multiline = True
    request = True
    response = True

    def __init__(self, pattern: str, column: int) -> None:
        super().__init__(pattern, column)
        self.rex_bytes: Regex | None = None
        if translate(pattern).isascii():
            self.rex_bytes = self._compile(pattern, column, latin1=True)

    def __call__(self, exchange: Exchange) -> bool:
        for wanted, body in (
            (self.request, exchange.request_body),
            (self.response, exchange.response_body),
        ):
            if wanted and body.data and self._search(body.data):
                return True
        return False

    def _search(self, data: bytearray) -> bool:
        if self.rex_bytes is not None:
            return self.rex_bytes.search(data) is not None
        return search(self.rex, data.decode("utf-8", "replace"))


class RequestBody(Body):
    __slots__ = ()
    code = "bq"
    response = False


class ResponseBody(Body):
    __slots__ = ()
    code = "bs"
    request = False


class Code(Node):
    __slots__ = ("high", "low", "text")

    def __init__(self, text: str, column: int) -> None:
        self.text = text.lower()
        if re.fullmatch(r"[1-5]xx", self.text):
            self.low = int(self.text[0]) * 100
            self.high = self.low + 99
        elif re.fullmatch(r"[1-5]\d\d", self.text):
            self.low = self.high = int(self.text)
        else:
            raise FilterError(f"bad status {text!r}: expected 100-599 or 1xx-5xx", column)

    def __call__(self, exchange: Exchange) -> bool:
        status = exchange.status
        return status is not None and self.low <= status <= self.high

    def __str__(self) -> str:
        return f"~c {self.text}"


class Error(Node):
    __slots__ = ()

    def __call__(self, exchange: Exchange) -> bool:
        return exchange.error is not None

    def __str__(self) -> str:
        return "~e"


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": float.__gt__,
    ">=": float.__ge__,
    "<": float.__lt__,
    "<=": float.__le__,
    "=": float.__eq__,
}
_UNITS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = re.compile(r"(>=|<=|>|<|=)?\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?", re.IGNORECASE)


class Duration(Node):
    __slots__ = ("compare", "ms", "op", "text")

    def __init__(self, text: str, column: int) -> None:
        match = _DURATION.fullmatch(text.strip())
        if not match:
            raise FilterError(f"bad duration {text!r}: expected e.g. >500ms or <2s", column)
        op, number, unit = match.groups()
        self.op = op or ">="
        self.compare = _COMPARE[self.op]
        self.ms = float(number) * _UNITS[(unit or "ms").lower()]
        self.text = f"{self.op}{number}{(unit or 'ms').lower()}"

    def __call__(self, exchange: Exchange) -> bool:
        duration = exchange.duration_ms
        return duration is not None and self.compare(float(duration), self.ms)

    def __str__(self) -> str:
        return f"~d {self.text}"


# operator name -> node factory(argument, column); `~e` alone takes no argument
OPERATORS: dict[str, Callable[[str, int], Node]] = {
    "m": Method,
    "u": Url,
    "c": Code,
    "s": Service,
    "t": Target,
    "h": Header,
    "hq": RequestHeader,
    "hs": ResponseHeader,
    "b": Body,
    "bq": RequestBody,
    "bs": ResponseBody,
    "d": Duration,
}
FLAGS: dict[str, Callable[[], Node]] = {"e": Error}


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
            end = _WORD_END.search(text, i)
            stop = end.start() if end else n
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
        if factory is Duration and not arg.quoted and value in _COMPARE:
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
