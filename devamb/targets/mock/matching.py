"""Whether a request matches a route: method, path pattern, query, headers and JSON fields."""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, MultiDict

from devamb.profile import regex as user_regex
from devamb.profile.regex import Regex

NO_BODY = object()  # the request has no JSON body (none, or not JSON)
_UNPARSED = object()


class PatternError(ValueError):
    """A path pattern that cannot be compiled."""


LITERAL, PARAM, STAR = 0, 1, 2  # the kinds of a path segment: text, {name}, *
Segment = tuple[int, str]  # (kind, the text or the parameter's name)


@dataclass(frozen=True)
class PathPattern:
    """`/users/{id}/*.json`, `/static/**`: `{name}` and `*` stay within a segment, `**` does not.

    Most patterns need no regex: a literal path (what recording writes) is compared as text, and
    one whose segments are each text, `{name}` or `*` is compared segment by segment. The rest
    (`**`, or `*` and `{…}` inside a segment) run on RE2, which never backtracks."""

    text: str
    segments: tuple[Segment, ...] | None = None  # None: the pattern needs `regex`
    params: tuple[str, ...] = ()
    regex: Regex | None = field(default=None, compare=False)

    @property
    def literal(self) -> bool:
        return self.segments is not None and not self.params and all(
            kind == LITERAL for kind, _ in self.segments
        )

    def match(self, path: str) -> dict[str, str] | None:
        if self.segments is None:
            found = user_regex.groups(self.regex, path)
            if found is None:
                return None
            return {name: found[f"p{i}"] for i, name in enumerate(self.params)}
        if self.literal:
            return {} if path == self.text else None
        parts = path.split("/")
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for (kind, value), part in zip(self.segments, parts, strict=True):
            if kind == LITERAL:
                if part != value:
                    return None
            elif kind == PARAM:
                if not part:
                    return None
                params[value] = part
        return params


_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def compile_path(text: str) -> PathPattern:
    if not text.startswith("/"):
        raise PatternError(f"a path starts with '/': {text!r}")
    out: list[str] = []
    params: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "{":
            end = text.find("}", i)
            name = text[i + 1 : end] if end > 0 else ""
            if end < 0:
                raise PatternError(f"unclosed '{{' at column {i + 1} of {text!r}")
            if not _PARAM.fullmatch(name):
                raise PatternError(f"{{{name}}} is not a parameter name (letters, digits, _ -)")
            if name in params:
                raise PatternError(f"parameter {{{name}}} appears twice")
            out.append(f"(?P<p{len(params)}>[^/]+)")
            params.append(name)
            i = end + 1
        elif ch == "}":
            raise PatternError(f"'}}' without '{{' at column {i + 1} of {text!r}")
        else:
            out.append(user_regex.escape(ch))
            i += 1
    segments = _segments(text)
    if segments is not None:
        return PathPattern(text, segments, tuple(params))
    return PathPattern(text, None, tuple(params), user_regex.compile_regex("".join(out)))


def _segments(text: str) -> tuple[Segment, ...] | None:
    """The pattern split at '/', when each segment is text, `{name}` or `*`; else None."""
    out: list[Segment] = []
    for part in text.split("/"):
        if part == "*":
            out.append((STAR, ""))
        elif part.startswith("{") and part.endswith("}") and part.count("{") == 1:
            out.append((PARAM, part[1:-1]))
        elif any(ch in part for ch in "*{}"):
            return None
        else:
            out.append((LITERAL, part))
    return tuple(out)


class PathIndex:
    """Which routes a request's path can match, in file order, without testing every route.

    Literal paths are looked up whole; segment patterns by their segment count and one text
    segment (the last, so `/items/{id}` is keyed on `items`); routes with a regex path or no
    path are always candidates. Lists stay sorted by route position, so the first candidate that
    matches is the first route in the file that matches."""

    def __init__(self, paths: list[PathPattern | None]) -> None:
        self.literal: dict[str, list[int]] = {}
        self.keyed: dict[tuple[int, int, str], list[int]] = {}
        self.always: list[int] = []
        for position, path in enumerate(paths):
            if path is None or path.segments is None:
                self.always.append(position)
            elif path.literal:
                self.literal.setdefault(path.text, []).append(position)
            else:
                self.keyed.setdefault(_key(path.segments), []).append(position)

    def candidates(self, path: str) -> Iterator[int]:
        lists = [self.always, self.literal.get(path, [])]
        if self.keyed:
            parts = path.split("/")
            count = len(parts)
            for index, part in enumerate(parts):
                found = self.keyed.get((count, index, part))
                if found:
                    lists.append(found)
        return heapq.merge(*[found for found in lists if found])


def _key(segments: tuple[Segment, ...]) -> tuple[int, int, str]:
    """(segment count, position, text) of the pattern's last text segment (the first, '',
    before the leading '/' when it has no other)."""
    for index in range(len(segments) - 1, -1, -1):
        kind, value = segments[index]
        if kind == LITERAL and (value or index == 0):
            return len(segments), index, value
    return len(segments), 0, ""


@dataclass(frozen=True)
class ValueMatch:
    """Equality (`kind="equals"`), a regex on the whole value, or presence (`value` True/False).

    A regex is an RE2 pattern (devamb.profile.regex): it matches in linear time, so a request cannot
    stall the event loop with a value made to backtrack; `source` is the pattern as written."""

    kind: str  # "equals" | "regex" | "present"
    value: Any
    source: str = ""

    def test(self, found: bool, actual: Any) -> bool:
        if self.kind == "present":
            return found is self.value
        if not found:
            return False
        if self.kind == "regex":
            text = actual if isinstance(actual, str) else _dumps(actual)
            return text is not None and user_regex.fullmatch(self.value, text)
        return same_value(self.value, actual)

    def describe(self) -> str:
        if self.kind == "present":
            return "present" if self.value else "absent"
        if self.kind == "regex":
            return f"matching /{self.source or self.value.pattern}/"
        return f"= {json.dumps(self.value, ensure_ascii=False)}"


def _dumps(value: Any) -> str | None:
    """A JSON value as text for a regex; None when too deeply nested to write out."""
    try:
        return json.dumps(value)
    except RecursionError:
        return None


def same_value(expected: Any, actual: Any) -> bool:
    """JSON equality: numbers by value, but true is not 1; objects and lists deeply."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(same_value(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(same_value(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def json_lookup(value: Any, dotted: str) -> tuple[bool, Any]:
    """`user.name`, `items.0.id` in a parsed JSON value: (found, value)."""
    for key in dotted.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return False, None
    return True, value


@dataclass
class RequestView:
    """What matching and templates look at; `params` are filled in by the path that matched."""

    method: str
    path: str
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes | None = None  # None: not read (too big)
    params: dict[str, str] = field(default_factory=dict)
    _json: Any = field(default=_UNPARSED, repr=False)

    @property
    def json(self) -> Any:
        """The parsed JSON body, or NO_BODY."""
        if self._json is _UNPARSED:
            self._json = NO_BODY
            if self.body:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
                    self._json = NO_BODY
        return self._json

    def lookup(self, source: str, key: str) -> tuple[bool, Any]:
        if source == "method":
            return True, self.method
        if source == "path":
            return (key in self.params), self.params.get(key)
        if source == "query":
            return (key in self.query), self.query.get(key)
        if source == "headers":
            return (key in self.headers), self.headers.get(key)
        if source == "json":
            body = self.json
            return (False, None) if body is NO_BODY else json_lookup(body, key)
        return False, None


@dataclass(frozen=True)
class Match:
    """A route's conditions; every one given must hold. Empty `methods` means any method."""

    methods: tuple[str, ...] = ()
    path: PathPattern | None = None
    query: tuple[tuple[str, ValueMatch], ...] = ()
    headers: tuple[tuple[str, ValueMatch], ...] = ()
    json: tuple[tuple[str, ValueMatch], ...] = ()

    def test(self, view: RequestView) -> dict[str, str] | None:
        """The path parameters when the request matches, else None."""
        ok, _, params, _ = self._check(view, stop=True)
        return params if ok else None

    def explain(self, view: RequestView) -> tuple[float, str]:
        """How close the request came (share of conditions met) and the first one that failed."""
        ok, met, _, why = self._check(view, stop=False)
        total = self.conditions
        return (met / total if total else 1.0), ("matches" if ok else why)

    @property
    def conditions(self) -> int:
        return (
            bool(self.methods) + (self.path is not None)
            + len(self.query) + len(self.headers) + len(self.json)
        )

    def _check(
        self, view: RequestView, *, stop: bool
    ) -> tuple[bool, int, dict[str, str], str]:
        met, why, params = 0, "", {}
        failures: list[str] = []

        def fail(reason: str) -> None:
            failures.append(reason)

        if self.methods:
            if view.method in self.methods:
                met += 1
            else:
                fail(f"method {view.method} is not {'/'.join(self.methods)}")
        if self.path is not None and not (stop and failures):
            found = self.path.match(view.path)
            if found is None:
                fail(f"path {view.path} does not match {self.path.text}")
            else:
                params = found
                met += 1
        for label, items, multi in (
            ("query", self.query, view.query),
            ("header", self.headers, view.headers),
            ("json", self.json, None),
        ):
            for name, matcher in items:
                if stop and failures:
                    break
                if multi is None:
                    found_it, actual = _json_value(view, name)
                    ok = matcher.test(found_it, actual)
                else:  # a repeated query parameter or header matches if any of its values does
                    values = multi.getall(name, [])
                    found_it, actual = bool(values), values[0] if values else None
                    ok = matcher.test(found_it, None) if not values else any(
                        matcher.test(True, v) for v in values
                    )
                if ok:
                    met += 1
                else:
                    fail(_why(label, name, matcher, found_it, actual))
        if failures:
            why = failures[0]
        return not failures, met, params, why


def _json_value(view: RequestView, name: str) -> tuple[bool, Any]:
    body = view.json
    return (False, None) if body is NO_BODY else json_lookup(body, name)


def _why(label: str, name: str, matcher: ValueMatch, found: bool, actual: Any) -> str:
    if matcher.kind == "present":
        return f"{label} {name} is {'present' if found else 'missing'}"
    if not found:
        return f"{label} {name} is missing"
    shown = actual if isinstance(actual, str) else json.dumps(actual, ensure_ascii=False)
    return f"{label} {name} is {shown!r}, not {matcher.describe()}"
