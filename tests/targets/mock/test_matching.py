"""Matching, table-driven: one route against requests that should and should not match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devamb.profile.regex import compile_regex, escape
from devamb.targets.mock.matching import PathIndex, PathPattern, compile_path, same_value
from tests.targets.mock.conftest import mock_spec, view

PATHS = [
    ("/users/{id}", "/users/42", {"id": "42"}),
    ("/users/{id}", "/users/42/orders", None),
    ("/users/{id}", "/users/", None),
    ("/users/{id}/orders/{order}", "/users/7/orders/x-1", {"id": "7", "order": "x-1"}),
    ("/files/*.json", "/files/a.json", {}),
    ("/files/*.json", "/files/a/b.json", None),
    ("/static/**", "/static/css/site.css", {}),
    ("/static/**", "/static/", {}),
    ("/static/**", "/other/x", None),
    ("/a/**/z", "/a/b/c/z", {}),
    ("/v1.0/x", "/v1.0/x", {}),
    ("/v1.0/x", "/v1x0/x", None),  # dots are literal
    ("/exact", "/exact/", None),
]


@pytest.mark.parametrize(("pattern", "path", "params"), PATHS)
def test_path_patterns(pattern: str, path: str, params: dict[str, str] | None) -> None:
    assert compile_path(pattern).match(path) == params


ROUTE = """
routes:
  - match:
      method: [POST, PUT]
      path: /orders/{id}
      query: {mode: fast, page: 2, trace: {present: false}, q: {regex: "ab+c"}}
      headers: {X-User: {present: true}, X-Tier: {regex: "gold|silver"}}
      json: {customer.name: ada, amount: 10, items.0.sku: {regex: "SKU-\\\\d+"}, paid: false}
    respond: {body: ok}
"""
GOOD_BODY = {"customer": {"name": "ada"}, "amount": 10.0, "items": [{"sku": "SKU-12"}],
             "paid": False}
GOOD_HEADERS = {"X-User": "u1", "x-tier": "gold"}
GOOD_TARGET = "/orders/9?mode=fast&page=2&q=abbbc"

CASES: list[tuple[str, str, str, dict[str, str], Any, str]] = [
    # (case, method, target, headers, body, first reason or "matches")
    ("all good", "POST", GOOD_TARGET, GOOD_HEADERS, GOOD_BODY, "matches"),
    ("other listed method", "PUT", GOOD_TARGET, GOOD_HEADERS, GOOD_BODY, "matches"),
    ("method", "GET", GOOD_TARGET, GOOD_HEADERS, GOOD_BODY, "method GET is not POST/PUT"),
    ("path", "POST", "/orders/9/x?mode=fast&page=2&q=abbbc", GOOD_HEADERS, GOOD_BODY,
     "path /orders/9/x does not match /orders/{id}"),
    ("query value", "POST", "/orders/9?mode=slow&page=2&q=abbbc", GOOD_HEADERS, GOOD_BODY,
     "query mode is 'slow', not = \"fast\""),
    ("query number as text", "POST", "/orders/9?mode=fast&page=02&q=abbbc", GOOD_HEADERS,
     GOOD_BODY, "query page is '02', not = \"2\""),
    ("absent query present", "POST", GOOD_TARGET + "&trace=1", GOOD_HEADERS, GOOD_BODY,
     "query trace is present"),
    ("regex is whole value", "POST", "/orders/9?mode=fast&page=2&q=xabcx", GOOD_HEADERS,
     GOOD_BODY, "query q is 'xabcx', not matching /ab+c/"),
    ("repeated query: any value", "POST", GOOD_TARGET + "&mode=other", GOOD_HEADERS, GOOD_BODY,
     "matches"),
    ("missing header", "POST", GOOD_TARGET, {"X-Tier": "gold"}, GOOD_BODY,
     "header X-User is missing"),
    ("header regex", "POST", GOOD_TARGET, {"X-User": "u", "X-Tier": "bronze"}, GOOD_BODY,
     "header X-Tier is 'bronze', not matching /gold|silver/"),
    ("json field", "POST", GOOD_TARGET, GOOD_HEADERS, {**GOOD_BODY, "customer": {"name": "bob"}},
     "json customer.name is 'bob', not = \"ada\""),
    ("json number type", "POST", GOOD_TARGET, GOOD_HEADERS, {**GOOD_BODY, "amount": "10"},
     "json amount is '10', not = 10"),
    ("json false is not 0", "POST", GOOD_TARGET, GOOD_HEADERS, {**GOOD_BODY, "paid": 0},
     "json paid is '0', not = false"),
    ("json list index regex", "POST", GOOD_TARGET, GOOD_HEADERS,
     {**GOOD_BODY, "items": [{"sku": "X-1"}]},
     "json items.0.sku is 'X-1', not matching /SKU-\\d+/"),
    ("json missing field", "POST", GOOD_TARGET, GOOD_HEADERS, {"amount": 10},
     "json customer.name is missing"),
    ("not json at all", "POST", GOOD_TARGET, GOOD_HEADERS, b"amount=10",
     "json customer.name is missing"),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_route_matching(
    tmp_path: Path, method: str, target: str, headers: dict[str, str], body: Any, expected: str
) -> None:
    route = mock_spec(tmp_path, ROUTE).routes[0]
    request = view(method, target, headers, body)
    params = route.match.test(request)
    score, why = route.match.explain(request)
    assert why == expected
    assert (params == {"id": "9"}) is (expected == "matches")
    assert (score == 1.0) is (expected == "matches")


def test_explain_scores_closer_requests_higher(tmp_path: Path) -> None:
    route = mock_spec(tmp_path, ROUTE).routes[0]
    near, _ = route.match.explain(view("POST", GOOD_TARGET, GOOD_HEADERS, {"amount": 10}))
    far, _ = route.match.explain(view("GET", "/nope"))
    assert 0 < far < near < 1


def test_a_route_without_match_matches_everything(tmp_path: Path) -> None:
    route = mock_spec(tmp_path, "routes: [{respond: {}}]").routes[0]
    assert route.match.test(view("DELETE", "/any/thing?x=1")) == {}


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
    ],
)
def test_json_equality(expected: Any, actual: Any, same: bool) -> None:
    assert same_value(expected, actual) is same


SEGMENT_PATTERNS = [
    "/", "/a", "/a/", "/a/b", "/a/{x}", "/{x}", "/{x}/b", "/a/*", "/*/b", "/*", "/a/{x}/c",
    "/a/*/{y}", "/a/b/c", "/a/**", "/a/*.json", "/{x}/{y}", "/a/{x}-{y}",
]
SEGMENT_PATHS = ["/", "/a", "/a/", "/a/b", "/a/bb", "/b", "/x/b", "/a//b", "/a/b/c", "/a/x.json",
                 "/a/b/", "//", "/a/1-2", "/é/b", "/a/b/c/d", ""]


@pytest.mark.parametrize("pattern", SEGMENT_PATTERNS)
def test_segment_matching_agrees_with_the_regex(pattern: str) -> None:
    """Patterns matched segment by segment give what the regex they stand for would."""
    compiled = compile_path(pattern)
    forced = PathPattern(pattern, None, compiled.params, compile_regex(_regex_of(pattern)))
    for path in SEGMENT_PATHS:
        assert compiled.match(path) == forced.match(path), (pattern, path)


def _regex_of(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            out.append(f"(?P<p{sum(o.startswith('(?P') for o in out)}>[^/]+)")
            i = end + 1
        else:
            out.append(escape(pattern[i]))
            i += 1
    return "".join(out)


def test_the_index_picks_what_testing_every_route_in_order_picks() -> None:
    patterns = [compile_path(p) for p in SEGMENT_PATTERNS] + [None]  # None: a route without path
    index = PathIndex(patterns)
    for path in SEGMENT_PATHS:
        everything = [i for i, p in enumerate(patterns) if p is None or p.match(path) is not None]
        candidates = list(index.candidates(path))
        assert candidates == sorted(candidates)
        assert [i for i in candidates if patterns[i] is None
                or patterns[i].match(path) is not None] == everything, path  # type: ignore[union-attr]


def test_only_patterns_that_need_one_get_a_regex() -> None:
    assert compile_path("/users/{id}/orders/*").regex is None
    assert compile_path("/static/**").regex is not None
    assert compile_path("/files/*.json").regex is not None
