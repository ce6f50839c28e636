"""Mock routes: the frozen spec a mock target serves, parsed from a mock file or inline YAML.

A mock file (paths of `file:` bodies are relative to it):

    routes:
      - name: one user                       # optional; shown in status
        match:
          method: GET                        # or [GET, HEAD]; any method when left out
          path: /users/{id}                  # {params}, * within a segment, ** across segments
          query: {page: 2, q: {regex: "a.*"}, debug: {present: false}}
          headers: {X-User: {present: true}}
          json: {user.name: ada}             # dotted fields of a JSON request body
        respond:
          status: 200
          headers: {X-Id: "{{path.id}}"}
          json: {id: "{{path.id}}", page: "{{query.page|1}}"}   # or body: text, or file: a.bin
        delay: 50ms
        times: 3                             # answers 3 times, then stops matching
      - match: {path: /flaky}
        sequence: [{status: 503}, {status: 200, body: ok}]
        repeat: last                         # last (default) | cycle
    fallback: {status: 404, json: {error: nope}}   # or {proxy: staging}
    grpc: [{method: /pkg.Svc/Method, response: {...}}]   # gRPC services: see grpc_rules.py

Errors are positioned like the profile's: `mocks/payments.yaml:12:9: routes[2].respond.status: …`.
`${VAR}` is not expanded in mock files (recordings may contain `$`); templates use `{{…}}`.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devamb.grpc.schema import Schema
from devamb.profile.env import Interpolator
from devamb.profile.problems import ProfileError
from devamb.profile.reader import Node, Reader, type_name
from devamb.profile.regex import RegexError, compile_regex
from devamb.profile.source import Path_, Source, read_source
from devamb.targets.mock.grpc_rules import GrpcRule, parse_rules
from devamb.targets.mock.matching import Match, PatternError, ValueMatch, compile_path
from devamb.targets.mock.template import Template, TemplateError, compile_template

TOP_KEYS = ("routes", "fallback", "grpc")
ROUTE_KEYS = ("name", "match", "respond", "sequence", "repeat", "times", "delay")
MATCH_KEYS = ("method", "path", "query", "headers", "json")
RESPOND_KEYS = ("status", "headers", "body", "json", "file", "delay", "template")
BODY_KEYS = ("body", "json", "file")
MATCHER_KEYS = ("regex", "present")
REPEATS = ("last", "cycle")
METHOD = re.compile(r"^[A-Za-z]+$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
# What a header value may not hold (RFC 9110 5.5): CR, LF, NUL and the other controls but HTAB.
BAD_HEADER_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Respond:
    """One answer. `json` holds the value with its string leaves compiled to Templates."""

    status: int = 200
    headers: tuple[tuple[str, Template], ...] = ()
    body: Template | None = None
    json: Any = None
    has_json: bool = False
    file: Path | None = None
    delay: float | None = None  # overrides the route's delay


@dataclass(frozen=True)
class Route:
    index: int
    name: str
    match: Match
    responds: tuple[Respond, ...]  # one, or the steps of a sequence
    repeat: str = "last"
    times: int | None = None
    delay: float = 0.0

    @property
    def label(self) -> str:
        return f"routes[{self.index}] {self.name}"


@dataclass(frozen=True)
class Fallback:
    """For requests no route matches: a fixed answer, or another target of the service."""

    respond: Respond | None = None
    proxy: str | None = None


@dataclass(frozen=True)
class MockSpec:
    routes: tuple[Route, ...] = ()
    fallback: Fallback = field(default_factory=Fallback)
    file: Path | None = None  # the mock file; None when written inline in the profile
    body_files: tuple[Path, ...] = ()
    grpc: tuple[GrpcRule, ...] = ()  # gRPC rules (http2 and grpc services)
    schema: Schema | None = None  # the service's, that encoded the gRPC rules' responses

    def watched_files(self) -> tuple[Path, ...]:
        """The files this spec was read from: editing one should reload the profile."""
        return ((self.file,) if self.file else ()) + self.body_files


@dataclass(frozen=True)
class Siblings:
    """The target being parsed and the other targets of its service (for `proxy:`)."""

    own: str
    names: tuple[str, ...]


class MockFileReader(Reader):
    """A Reader for a mock file: list items read `routes[2].respond` rather than `routes.2…`."""

    def report(self, path: Path_, message: str, *, key: bool = False) -> None:
        super().report(path, message, key=key)
        problem = self.problems[-1]
        self.problems[-1] = type(problem)(
            problem.file, problem.line, problem.col, bracketed(path), problem.message
        )


def bracketed(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_mock_file(
    path: Path, display: str, interpolator: Interpolator, siblings: Siblings | None
) -> MockSpec:
    """Read and parse a mock file; raises OSError when unreadable, ProfileError when wrong."""
    with _collector_paused():
        source: Source = read_source(path, display)  # bounded in size, UTF-8 or positioned
        reader = MockFileReader(source, interpolator)
        root = reader.root()
        if root.value is None:
            root.problem("the mock file is empty; it needs 'routes:'")
            raise ProfileError(reader.problems)
        spec = parse_mock(root, path.parent, siblings, file=path)
        if reader.problems or spec is None:
            raise ProfileError(reader.problems)
        return spec


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a file is read: everything a load makes lives until
    it ends, and with collections on, each one walks all of it again, so a mock file of 20,000
    routes spent most of its load in the collector (twice as long as without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_mock(
    node: Node,
    base: Path,
    siblings: Siblings | None,
    *,
    file: Path | None = None,
    fallback_node: Node | None = None,
) -> MockSpec | None:
    """`{routes: [...], fallback: ...}`; `fallback_node` (from the profile) overrides the file's."""
    grpc_only = node.has("grpc") and not node.has("routes")
    if not node.mapping(TOP_KEYS, required=() if grpc_only else ("routes",)):
        return None
    before = len(node.reader.problems)
    parser = _Parser(base)
    routes_node = node.child("routes")
    routes: list[Route] = []
    grpc = (parse_rules(node.child("grpc")) or ()) if node.has("grpc") else ()
    if grpc_only:
        pass
    elif not isinstance(routes_node.value, list):
        routes_node.problem(f"expected a list of routes, got {type_name(routes_node.value)}")
    else:
        for element in routes_node.elements():
            route = parser.route(element, len(routes))
            if route is not None:
                routes.append(route)
    fallback = Fallback()
    chosen = fallback_node if fallback_node is not None else (
        node.child("fallback") if node.has("fallback") else None
    )
    if chosen is not None:
        fallback = parser.fallback(chosen, siblings) or fallback
    if len(node.reader.problems) > before:
        return None
    return MockSpec(tuple(routes), fallback, file, tuple(parser.files), grpc)


class _Parser:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.files: list[Path] = []

    def route(self, node: Node, index: int) -> Route | None:
        if not node.mapping(ROUTE_KEYS):
            return None
        before = len(node.reader.problems)
        match = self.match(node.child("match")) if node.has("match") else Match()
        params = match.path.params if match and match.path else ()
        responds: list[Respond] = []
        repeat = "last"
        has_respond, has_sequence = node.has("respond"), node.has("sequence")
        if has_respond == has_sequence:
            node.problem("a route needs exactly one of 'respond' or 'sequence'")
        elif has_respond:
            respond = self.respond(node.child("respond"), params)
            responds = [respond] if respond else []
        else:
            seq = node.child("sequence")
            if not isinstance(seq.value, list) or not seq.value:
                seq.problem("expected a non-empty list of responds")
            else:
                responds = [r for e in seq.elements() if (r := self.respond(e, params))]
            if node.has("repeat"):
                repeat = node.child("repeat").one_of(REPEATS) or repeat
        if node.has("repeat") and not has_sequence:
            node.child("repeat").problem("'repeat' goes with 'sequence'", key=True)
        times = _at_least_one(node.child("times")) if node.has("times") else None
        delay = node.child("delay").duration() if node.has("delay") else 0.0
        name = node.child("name").string(interpolate=False) if node.has("name") else None
        if len(node.reader.problems) > before or match is None or not responds:
            return None
        if name is None:
            methods = "|".join(match.methods) or "ANY"
            name = f"{methods} {match.path.text if match.path else '*'}"
        return Route(index, name, match, tuple(responds), repeat, times, delay or 0.0)

    def match(self, node: Node) -> Match | None:
        if not node.mapping(MATCH_KEYS):
            return None
        methods: tuple[str, ...] = ()
        if node.has("method"):
            methods = self.methods(node.child("method")) or ()
        path = None
        if node.has("path"):
            text = node.child("path").string(interpolate=False)
            if text is not None:
                try:
                    path = compile_path(text)
                except PatternError as exc:
                    node.child("path").problem(str(exc))
        query = self.matchers(node.child("query"), text_only=True) if node.has("query") else ()
        headers = (
            self.matchers(node.child("headers"), text_only=True) if node.has("headers") else ()
        )
        json = self.matchers(node.child("json"), text_only=False) if node.has("json") else ()
        return Match(methods, path, query or (), headers or (), json or ())

    @staticmethod
    def methods(node: Node) -> tuple[str, ...] | None:
        items = node.elements() if isinstance(node.value, list) else [node]
        if isinstance(node.value, list) and not items:
            node.problem("expected at least one method")
        out: list[str] = []
        for item in items:
            text = item.string(interpolate=False)
            if text is None:
                continue
            if not METHOD.match(text):
                item.problem(f"{text!r} is not an HTTP method")
                continue
            out.append(text.upper())
        return tuple(out)

    @staticmethod
    def matchers(node: Node, *, text_only: bool) -> tuple[tuple[str, ValueMatch], ...] | None:
        if not isinstance(node.value, dict):
            node.problem(f"expected a mapping of names to values, got {type_name(node.value)}")
            return None
        out: list[tuple[str, ValueMatch]] = []
        for name, child in node.items():
            matcher = _value_matcher(child, text_only)
            if matcher is not None:
                out.append((name, matcher))
        return tuple(out)

    def respond(self, node: Node, params: tuple[str, ...]) -> Respond | None:
        if not node.mapping(RESPOND_KEYS):
            return None
        before = len(node.reader.problems)
        templated = node.child("template").boolean() if node.has("template") else True
        status = node.child("status").integer(low=100, high=599) if node.has("status") else 200
        headers: list[tuple[str, Template]] = []
        if node.has("headers"):
            hnode = node.child("headers")
            if not isinstance(hnode.value, dict):
                hnode.problem(f"expected a mapping of header names, got {type_name(hnode.value)}")
            for name, child in hnode.items():
                if not HEADER_NAME.match(str(name)):
                    child.problem(f"{name!r} is not a header name (letters, digits, "
                                  "!#$%&'*+.^_`|~-, no spaces)", key=True)
                    continue
                if isinstance(child.value, int | float) and not isinstance(child.value, bool):
                    child.value = str(child.value)
                text = child.string(interpolate=False)
                if text is None:
                    continue
                compiled = _template(child, text, params, templated is not False)
                if compiled is None:
                    continue
                literal = "".join(p for p in compiled.parts if isinstance(p, str))
                if bad := BAD_HEADER_VALUE.search(literal):
                    child.problem(f"a header value cannot hold {bad.group()!r} "
                                  "(no line breaks or control characters)")
                    continue
                headers.append((name, compiled))
        bodies = [k for k in BODY_KEYS if node.has(k)]
        body, json_value, file = None, None, None
        if len(bodies) > 1:
            node.child(bodies[1]).problem(
                f"a respond has one body: {' or '.join(bodies)}, not both", key=True
            )
        elif bodies == ["body"]:
            bnode = node.child("body")
            if isinstance(bnode.value, int | float) and not isinstance(bnode.value, bool):
                bnode.value = str(bnode.value)
            text = bnode.string(interpolate=False)
            if text is not None:
                body = _template(bnode, text, params, templated is not False)
        elif bodies == ["json"]:
            json_value = _json_template(node.child("json"), params, templated is not False)
        elif bodies == ["file"]:
            file = self.file(node.child("file"))
        delay = node.child("delay").duration() if node.has("delay") else None
        if len(node.reader.problems) > before or status is None:
            return None
        return Respond(status, tuple(headers), body, json_value, bodies == ["json"], file, delay)

    def file(self, node: Node) -> Path | None:
        text = node.string(interpolate=False)
        if text is None:
            return None
        path = (self.base / text).resolve()
        if not path.is_file():
            node.problem(f"no file {text!r} (looked for {path})")
            return None
        self.files.append(path)
        return path

    def fallback(self, node: Node, siblings: Siblings | None) -> Fallback | None:
        if isinstance(node.value, dict) and "proxy" in node.value:
            if not node.mapping(("proxy",)):
                return None
            pnode = node.child("proxy")
            name = pnode.string(interpolate=False)
            if name is None:
                return None
            if siblings is not None:
                others = [n for n in siblings.names if n != siblings.own]
                if name == siblings.own:
                    pnode.problem("a mock cannot fall back to itself")
                    return None
                if name not in others:
                    pnode.problem(
                        f"{name!r} is not another target of this service; "
                        f"expected one of {', '.join(others) or '(none)'}"
                    )
                    return None
            return Fallback(proxy=name)
        respond = self.respond(node, ())
        return Fallback(respond=respond) if respond is not None else None


def _at_least_one(node: Node) -> int | None:
    value = node.integer()
    if value is not None and value < 1:
        node.problem(f"expected 1 or more, got {value}")
        return None
    return value


def _value_matcher(node: Node, text_only: bool) -> ValueMatch | None:
    value = node.value
    if isinstance(value, dict) and value and set(value) <= set(MATCHER_KEYS):
        if len(value) > 1:
            node.problem("use one of 'regex' or 'present', not both")
            return None
        if "present" in value:
            flag = node.child("present").boolean()
            return None if flag is None else ValueMatch("present", flag)
        pattern = node.child("regex").string(interpolate=False)
        if pattern is None:
            return None
        try:
            return ValueMatch("regex", compile_regex(pattern), pattern)
        except RegexError as exc:
            node.child("regex").problem(f"bad regex {pattern!r}: {exc}")
            return None
    if text_only:
        if isinstance(value, bool):
            return ValueMatch("equals", "true" if value else "false")
        if isinstance(value, str | int | float):
            return ValueMatch("equals", str(value))
        node.problem(
            f"expected a value, {{regex: …}} or {{present: true|false}}, got {type_name(value)}"
        )
        return None
    return ValueMatch("equals", value)


def _template(node: Node, text: str, params: tuple[str, ...], enabled: bool) -> Template | None:
    if not enabled:
        return Template((text,) if text else ())
    try:
        template = compile_template(text)
    except TemplateError as exc:
        node.problem(str(exc))
        return None
    for expr in template.expressions:
        if expr.source == "path" and expr.key not in params:
            known = ", ".join("{" + p + "}" for p in params) or "none"
            node.problem(f"{{{{path.{expr.key}}}}}: the route's path has no {{{expr.key}}} "
                         f"(its parameters: {known})")
            return None
    return template


def _json_template(node: Node, params: tuple[str, ...], enabled: bool) -> Any:
    """The JSON value with every string leaf compiled (or kept as text when not templated)."""
    value = node.value
    if isinstance(value, dict):
        return {k: _json_template(child, params, enabled) for k, child in node.items()}
    if isinstance(value, list):
        return [_json_template(child, params, enabled) for child in node.elements()]
    if isinstance(value, str):
        return _template(node, value, params, enabled) if enabled and "{{" in value else value
    return value
