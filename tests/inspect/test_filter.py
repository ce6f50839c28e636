"""Filter expressions: parsing, evaluation, canonical form and errors with exact columns."""

from __future__ import annotations

import pytest

from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.filter import FilterError, compile_filter, parse_filter


def body(data: bytes) -> BodyPreview:
    preview = BodyPreview(limit=64)
    preview.add(data)
    return preview


def make(**fields: object) -> Exchange:
    base: dict[str, object] = dict(
        id=1,
        service="payments",
        target="staging",
        protocol="http",
        client="127.0.0.1:5000",
        method="POST",
        path="/charge?amount=10",
        url="https://payments.staging.example.com/charge?amount=10",
        status=201,
        duration_ms=120.0,
        request_headers=[("Content-Type", "application/json"), ("X-Trace", "abc")],
        response_headers=[("Content-Type", "application/json"), ("Server", "nginx")],
    )
    base.update(fields)
    base.setdefault("request_body", body(b'{"card": "4242"}'))
    base.setdefault("response_body", body(b'{"id": "ch_1", "status": "ok"}'))
    return Exchange(**base)  # type: ignore[arg-type]


CHARGE = make()
GET_404 = make(
    id=2,
    method="GET",
    path="/users/7",
    url="http://127.0.0.1:8001/users/7",
    status=404,
    target="local",
    duration_ms=3.5,
    response_headers=[("Content-Type", "text/plain")],
    response_body=body(b"not found"),
    request_body=BodyPreview(),
)
FAILED = make(
    id=3,
    method="GET",
    path="/slow",
    url="http://127.0.0.1:8001/slow",
    status=None,
    error="upstream-timeout",
    duration_ms=30_000.0,
    target="local",
)
SERVER_ERROR = make(
    id=4,
    method="PUT",
    path="/refund",
    url="https://payments.staging.example.com/refund",
    status=503,
    duration_ms=2500.0,
)
TCP = Exchange(5, "cache", "local", "tcp", "127.0.0.1:6000", duration_ms=10.0)
IN_FLIGHT = make(id=6, status=None, duration_ms=None)
ALL = [CHARGE, GET_404, FAILED, SERVER_ERROR, TCP, IN_FLIGHT]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", [1, 2, 3, 4, 5, 6]),
        ("   ", [1, 2, 3, 4, 5, 6]),
        ("~m POST", [1, 6]),
        ("~m post", [1, 6]),
        ("~m 'GET|PUT'", [2, 3, 4]),
        ("~m P", []),  # the whole method must match
        ("~u /charge", [1, 6]),
        ("~u amount=\\d+", [1, 6]),
        ("~u staging\\.example", [1, 4, 6]),  # the upstream URL counts too
        ("charge", [1, 6]),  # a bare word is ~u
        ("CHARGE", []),  # smart case: upper case makes it case-sensitive
        ("users", [2]),
        ('"/users/7"', [2]),
        ("~c 404", [2]),
        ("~c 4xx", [2]),
        ("~c 5XX", [4]),
        ("~c 2xx", [1]),
        ("~s payments", [1, 2, 3, 4, 6]),
        ("~s pay", []),  # names match whole
        ("~s 'pay.*'", [1, 2, 3, 4, 6]),
        ("~s cache", [5]),
        ("~t local", [2, 3, 5]),
        ("~h 'server: nginx'", [1, 3, 4, 6]),
        ("~h x-trace", [1, 2, 3, 4, 6]),
        ("~hq server", []),
        ("~hs server", [1, 3, 4, 6]),
        ("~hs '^content-type: text/'", [2]),
        ("~b 4242", [1, 3, 4, 6]),
        ("~b 'not found'", [2]),
        ("~bq ch_1", []),
        ("~bs ch_1", [1, 3, 4, 6]),
        ("~e", [3]),
        ("~e | ~c 5xx", [3, 4]),
        ("~d >500ms", [3, 4]),
        ("~d > 500ms", [3, 4]),
        ("~d <2s", [1, 2, 5]),
        ("~d <=3.5", [2]),
        ("~d =120ms", [1]),
        ("~d 1m", []),
        ("~d >=0.5m", [3]),
        ("~d 2.5s", [3, 4]),  # a bare duration means >=
        ("!~e", [1, 2, 4, 5, 6]),
        ("!!~e", [3]),
        ("~m GET & ~t local", [2, 3]),
        ("~m GET ~t local", [2, 3]),  # adjacency is &
        ("~m GET & !~e", [2]),
        ("~c 404 | ~c 503", [2, 4]),
        ("~m PUT | ~m GET & ~e", [3, 4]),  # & binds tighter than |
        ("(~m PUT | ~m GET) & ~e", [3]),
        ("!(~m GET | ~s cache)", [1, 4, 6]),
        ("~s payments & !(~c 2xx | ~c 4xx)", [3, 4, 6]),
        ("((~e))", [3]),
        ("~s payments&~c 4xx", [2]),  # operators need no spaces around them
    ],
)
def test_evaluates(expression: str, expected: list[int]) -> None:
    matches = compile_filter(expression)
    assert [e.id for e in ALL if matches(e)] == expected


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        ("~c 6xx", 4, "bad status '6xx'"),
        ("~m GET & ~c 6xx", 13, "bad status '6xx'"),
        ("~c abc", 4, "bad status"),
        ("~c 5000", 4, "bad status"),
        ("~c 099", 4, "bad status"),
        ("~z", 1, "unknown operator ~z"),
        ("~m GET | ~zz x", 10, "unknown operator ~zz"),
        ("~", 1, "expected an operator name"),
        ("~ GET", 1, "expected an operator name"),
        ("(~m GET", 1, "unbalanced '('"),
        ("~e & ((~m GET) | ~e", 6, "unbalanced '('"),
        ("~m GET)", 7, "unbalanced ')'"),
        ("~e )", 4, "unbalanced ')'"),
        (")", 1, "expected a filter, found ')'"),
        ("()", 2, "empty parentheses"),
        ("~u (", 4, "~u needs an argument"),  # '(' opens a group, so ~u lacks an argument
        ("~u '('", 4, "bad regex '('"),
        ('~b "[a-"', 4, "bad regex"),
        ("x & ~h '*x'", 8, "bad regex"),
        ("[", 1, "bad regex"),
        ("~m", 3, "~m needs an argument"),
        ("~m & ~e", 4, "~m needs an argument"),
        ("~c", 3, "~c needs an argument"),
        ("~e &", 5, "expected a filter after '&'"),
        ("~e | ", 6, "expected a filter after '|'"),
        ("!", 2, "expected a filter after '!'"),
        ("| ~e", 1, "expected a filter, found '|'"),
        ("~e && ~e", 5, "expected a filter after '&'"),
        ("~d fast", 4, "bad duration 'fast'"),
        ("~d >", 4, "bad duration '>'"),
        ("~d >500h", 4, "bad duration"),
        ("~d '>500ms'", 4, None),  # quoted is fine
        ('~u "abc', 4, "unterminated quoted string"),
        ("'", 1, "unterminated quoted string"),
    ],
)
def test_bad_input_points_at_the_column(expression: str, column: int, message: str | None) -> None:
    if message is None:
        compile_filter(expression)
        return
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    assert info.value.column == column, str(info.value)
    assert message in info.value.message
    assert str(info.value).startswith(f"column {column}: ")


def test_caret_marks_the_column() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter("~m GET & ~c 6xx")
    assert info.value.caret("~m GET & ~c 6xx") == "~m GET & ~c 6xx\n            ^"


@pytest.mark.parametrize(
    ("expression", "canonical"),
    [
        ("", ""),
        ("~m POST", "~m POST"),
        ("charge", "~u charge"),
        ("~m GET ~c 5xx", "~m GET & ~c 5xx"),
        ("a|b&c", "~u a | ~u b & ~u c"),
        ("(a|b)&c", "(~u a | ~u b) & ~u c"),
        ("!(a & b)", "!(~u a & ~u b)"),
        ("!(a)", "!~u a"),
        ("~d > 2s", "~d >2s"),
        ("~d 500", "~d >=500ms"),
        ("~c 5XX", "~c 5xx"),
        ("~h 'x: 1'", '~h "x: 1"'),
        ('~b "say \\"hi\\""', '~b "say \\"hi\\""'),
        ("~u '\\d+/(a|b)'", '~u "\\d+/(a|b)"'),
        ("~u \\d+", "~u \\d+"),
        ("~u '!x'", '~u "!x"'),
        (r"~u 'a\\\\'", r"~u a\\"),
        ("~e | ~hq a | ~bs b", "~e | ~hq a | ~bs b"),
    ],
)
def test_canonical_form_round_trips(expression: str, canonical: str) -> None:
    tree = parse_filter(expression)
    assert str(tree) == canonical
    again = parse_filter(canonical)
    assert str(again) == canonical
    assert [e.id for e in ALL if tree(e)] == [e.id for e in ALL if again(e)]


def test_quoted_strings_keep_regex_escapes() -> None:
    assert compile_filter(r"~u '\?amount=\d+$'")(CHARGE)
    assert compile_filter(r'~b "\"card\": \"\d+\""')(CHARGE)
    assert not compile_filter(r'~b "\"card\": \"\D+\""')(CHARGE)


def test_body_decoding_tolerates_binary() -> None:
    exchange = make(response_body=body(b"\xff\xfe\x00binary\x80 tail"))
    assert compile_filter("~bs 'binary. tail'")(exchange)


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("~bs 'CAFÉ au'", True),  # non-ASCII, case-sensitive: searched as text
        ("~bs 'café AU'", False),
        ("~bs 'café au'", True),  # smart case on text
        ("~bs 'LAIT'", False),  # ASCII, case-sensitive: searched as bytes
        ("~bs 'lait'", True),  # smart case on bytes
        ("~bs '^second line$'", True),  # multi-line anchors
        ("~bs '\\N{LATIN CAPITAL LETTER E WITH ACUTE}'", True),  # a str-only escape
    ],
)
def test_body_search_paths(expression: str, matches: bool) -> None:
    exchange = make(response_body=body("CAFÉ au Lait\nsecond line\n".encode()))
    assert compile_filter(expression)(exchange) is matches


def test_tcp_exchanges_have_no_method_status_or_headers() -> None:
    for expression in ("~m GET", "~c 2xx", "~h .", "~b .", "~u ."):
        assert not compile_filter(expression)(TCP)
    assert compile_filter("!~m GET")(TCP)


def test_regexes_compile_once() -> None:
    tree = parse_filter("~u a & ~b b")
    rex = [child.rex for child in tree.children]  # type: ignore[attr-defined]
    for exchange in ALL:
        tree(exchange)
    assert [child.rex for child in tree.children] == rex  # type: ignore[attr-defined]
