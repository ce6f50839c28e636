"""The terms of a filter expression and how each one matches an Exchange: the tree that
`devamb.inspect.filter` parses an expression into (the language is described there)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from devamb.grpc.status import name_of, parse_code
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
    HELP = ""  # what the term matches, one line (docs/reference/filters.md is made of it)
    ARG = ""  # how its argument is written in the reference: REGEX, CODE, … ("" : none)

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
    ARG = "REGEX"
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
    HELP = 'the method: a regex matching the whole method, any case (`~m "GET|HEAD"`)'
    ARG = "METHOD"
    code = "m"
    ignore_case = True
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.method or "")


class Url(_Rex):
    __slots__ = ()
    HELP = "the path with its query, or the upstream URL; a bare word means `~u word`"
    code = "u"

    def __call__(self, exchange: Exchange) -> bool:
        rex = self.rex
        return bool(
            (exchange.path and search(rex, exchange.path))
            or (exchange.url and search(rex, exchange.url))
        )


class Service(_Rex):
    __slots__ = ()
    HELP = "the service name: a regex matching the whole name"
    ARG = "SERVICE"
    code = "s"
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.service)


class Target(_Rex):
    __slots__ = ()
    HELP = "the target name: a regex matching the whole name"
    ARG = "TARGET"
    code = "t"
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        return fullmatch(self.rex, exchange.target)


class Header(_Rex):
    __slots__ = ()
    HELP = "any request or response header line `name: value`"
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
    HELP = "a request header line `name: value`"
    code = "hq"
    response = False


class ResponseHeader(Header):
    __slots__ = ()
    HELP = "a response header line `name: value`"
    code = "hs"
    request = False


class Body(_Rex):
    """Searches raw bytes (one byte one character) when the regex is ASCII, so binary bodies
    need no decoding; else the body decoded as UTF-8 text."""

    __slots__ = ("rex_bytes",)
    HELP = "either body preview, as UTF-8 text"
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
    HELP = "the request body preview"
    code = "bq"
    response = False


class ResponseBody(Body):
    __slots__ = ()
    HELP = "the response body preview"
    code = "bs"
    request = False


class Code(Node):
    __slots__ = ("high", "low", "text")
    HELP = "the status: `~c 404`, or a class: `~c 5xx`"
    ARG = "CODE"

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


def _grpc(exchange: Exchange) -> dict[str, Any] | None:
    call = exchange.notes.get("grpc") if exchange.notes else None
    return call if isinstance(call, dict) else None


class GrpcMethod(_Rex):
    """A gRPC call whose `/pkg.Service/Method` the regex finds (a plain word: a substring)."""

    __slots__ = ()
    HELP = "a gRPC call whose `/pkg.Service/Method` the regex finds (`~grpc Greeter/Say`)"
    code = "grpc"

    def __call__(self, exchange: Exchange) -> bool:
        call = _grpc(exchange)
        return call is not None and search(self.rex, f"/{call['service']}/{call['method']}")


class GrpcStatus(Node):
    """A gRPC call that ended with the status: a name (any case) or a number."""

    __slots__ = ("number",)
    HELP = (
        "a gRPC call that ended with the status: a name, any case, or a number (`~gs "
        "UNAVAILABLE`)"
    )
    ARG = "CODE"

    def __init__(self, text: str, column: int) -> None:
        number = parse_code(text)
        if number is None:
            raise FilterError(
                f"bad gRPC status {text!r}: expected a name like UNAVAILABLE or a number",
                column,
            )
        self.number = number

    def __call__(self, exchange: Exchange) -> bool:
        call = _grpc(exchange)
        return call is not None and call.get("status") == self.number

    def __str__(self) -> str:
        return f"~gs {name_of(self.number)}"


class RedisCommand(_Rex):
    """A Redis command (protocol: redis) whose name the regex matches whole, any case: `~cmd GET`,
    `~cmd "H.*"`, `~cmd "CLIENT SETNAME"`."""

    __slots__ = ()
    HELP = "a Redis command whose name the regex matches whole, any case (`~cmd GET`)"
    code = "cmd"
    ignore_case = True
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        note = exchange.notes.get("redis") if exchange.notes else None
        if not isinstance(note, dict) or "command" not in note:
            return False
        name = note["command"]
        return fullmatch(self.rex, name) or fullmatch(self.rex, name.split(" ")[0])


def _sql(exchange: Exchange) -> dict[str, Any] | None:
    note = exchange.notes.get("sql") if exchange.notes else None
    return note if isinstance(note, dict) else None


class Sql(_Rex):
    """A PostgreSQL statement whose text the regex finds (`~sql "insert into orders"`)."""

    __slots__ = ()
    HELP = 'a PostgreSQL statement whose text the regex finds (`~sql "from orders"`)'
    code = "sql"

    def __call__(self, exchange: Exchange) -> bool:
        note = _sql(exchange)
        return note is not None and search(self.rex, str(note.get("statement", "")))


class SqlState(_Rex):
    """A PostgreSQL statement that failed with a SQLSTATE the regex matches whole
    (`~sqlstate 40001`, `~sqlstate "23.*"`)."""

    __slots__ = ()
    HELP = "a PostgreSQL statement that failed with a SQLSTATE the regex matches whole"
    code = "sqlstate"
    smart_case = False

    def __call__(self, exchange: Exchange) -> bool:
        note = _sql(exchange)
        error = note.get("error") if note is not None else None
        return isinstance(error, dict) and fullmatch(self.rex, str(error.get("sqlstate", "")))


class Error(Node):
    __slots__ = ()
    HELP = "the exchange failed: its `error` is set (a 5xx answer alone is not: use `~c 5xx`)"

    def __call__(self, exchange: Exchange) -> bool:
        return exchange.error is not None

    def __str__(self) -> str:
        return "~e"


COMPARE: dict[str, Callable[[float, float], bool]] = {
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
    HELP = (
        "the duration compared with `>`, `>=`, `<`, `<=` or `=` (`~d >500ms`; a bare one "
        "is `>=`)"
    )
    ARG = "DURATION"

    def __init__(self, text: str, column: int) -> None:
        match = _DURATION.fullmatch(text.strip())
        if not match:
            raise FilterError(f"bad duration {text!r}: expected e.g. >500ms or <2s", column)
        op, number, unit = match.groups()
        self.op = op or ">="
        self.compare = COMPARE[self.op]
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
    "dur": Duration,
    "sql": Sql,
    "sqlstate": SqlState,
    "grpc": GrpcMethod,
    "gs": GrpcStatus,
    "cmd": RedisCommand,
}
FLAGS: dict[str, Callable[[], Node]] = {"e": Error, "err": Error}

