"""`mock:` targets: answer from routes in a mock file (or inline), without any upstream.

    targets:
      mock: {mock: mocks/payments.yaml}                  # relative to the profile's folder
      partial:
        mock: mocks/payments.yaml
        fallback: {proxy: staging}                       # unmatched requests go to staging
      inline:
        mock: {routes: [{match: {path: /ping}, respond: {body: pong}}]}

See `routes.py` for the file format. Unmatched requests get the fallback (by default a
404 whose JSON names the closest routes) and are counted and listed in `details()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import mimetypes
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from devamb.grpc.schema import Schema
from devamb.profile import display_path
from devamb.profile.problems import Problem, ProfileError
from devamb.profile.reader import Node
from devamb.profile.schema import TargetSpec
from devamb.proxy.errors import UpstreamFailed
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import Response, StreamResponse
from devamb.targets.base import Target, TargetContext, TargetUnavailable
from devamb.targets.mock.grpc_rules import GrpcRule, bind
from devamb.targets.mock.grpc_serve import serve_call
from devamb.targets.mock.matching import PathIndex, RequestView
from devamb.targets.mock.routes import (
    BAD_HEADER_VALUE,
    Fallback,
    MockSpec,
    Respond,
    Route,
    Siblings,
    load_mock_file,
    parse_mock,
)
from devamb.targets.mock.state import MockState
from devamb.targets.mock.template import Template

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers, H2Stream

KEYS = ("mock", "fallback")
MAX_BODY = 1024 * 1024  # request bodies up to this are read whole for matching
FILE_CHUNK = 256 * 1024
CLOSEST_SHOWN = 3
CLOSEST_SCAN = 1000  # routes looked at to name the closest ones to an unmatched request


@dataclass(frozen=True)
class MockTargetSpec(TargetSpec):
    KIND = "mock"
    mock: MockSpec = field(default_factory=MockSpec)
    written: str = "inline"  # the mock file as written in the profile

    def describe(self) -> str:
        if self.mock.grpc:
            count = len(self.mock.grpc)
            return f"mock {self.written} ({count} gRPC rule{'s' if count != 1 else ''})"
        count = len(self.mock.routes)
        return f"mock {self.written} ({count} route{'s' if count != 1 else ''})"

    def watched_files(self) -> tuple[Path, ...]:
        return self.mock.watched_files()


def parse(name: str, node: Node, protocol: str) -> MockTargetSpec | None:
    if not node.mapping(KEYS, required=("mock",)):
        return None
    value = node.child("mock")
    siblings = _siblings(node, name)
    base = _profile_folder(node)
    fallback = node.child("fallback") if node.has("fallback") else None
    if isinstance(value.value, dict):
        spec = parse_mock(value, base, siblings, fallback_node=fallback)
        if spec is None or not _fits(node, spec, protocol):
            return None
        return MockTargetSpec(name, spec, "inline")
    text = value.string()
    if text is None:
        return None
    path = (base / text).resolve()
    try:
        spec = load_mock_file(path, display_path(path), node.reader.interpolator, siblings)
    except OSError as exc:
        value.problem(f"cannot read mock file {text!r}: {exc.strerror or exc}")
        return None
    except ProfileError as exc:
        node.reader.problems.extend(exc.problems)
        return None
    if fallback is not None:  # the profile's fallback wins over the file's
        chosen = parse_mock(
            Node(node.reader, value.path, {"routes": []}), base, siblings, fallback_node=fallback
        )
        if chosen is None:
            return None
        spec = dataclasses.replace(spec, fallback=chosen.fallback)
    if not _fits(node, spec, protocol):
        return None
    return MockTargetSpec(name, spec, text)


def _fits(node: Node, spec: MockSpec, protocol: str) -> bool:
    """HTTP routes serve http services; gRPC rules http2 and grpc services."""
    where = node.child("mock")
    if protocol in ("http2", "grpc"):
        written = isinstance(where.value, dict) and ("routes" in where.value
                                                      or "fallback" in where.value)
        if written or spec.routes or node.has("fallback") or spec.fallback != Fallback():
            where.problem(f"a mock on a {protocol} service answers from 'grpc:' rules; "
                          "'routes' and 'fallback' serve http services")
            return False
        return True
    if spec.grpc:
        where.problem("'grpc:' rules serve http2 and grpc services; this is an http service")
        return False
    return True


def bind_grpc_schema(
    targets: dict[str, TargetSpec], schema: Schema | None, problems: list[Problem]
) -> dict[str, TargetSpec]:
    """The service's mock targets with their gRPC responses encoded by its `schema`; a rule
    that cannot be is added to `problems`."""
    bound: dict[str, TargetSpec] = {}
    for name, spec in targets.items():
        if isinstance(spec, MockTargetSpec) and spec.mock.grpc:
            rules, found = bind(spec.mock.grpc, schema)
            problems.extend(found)
            mock = dataclasses.replace(spec.mock, grpc=rules, schema=schema)
            spec = dataclasses.replace(spec, mock=mock)
        bound[name] = spec
    return bound


def _profile_folder(node: Node) -> Path:
    return Path(node.reader.source.file).resolve().parent


def _siblings(node: Node, own: str) -> Siblings | None:
    """The names of the targets beside this one, read from the profile data at `path[:-1]`."""
    data: Any = node.reader.source.data
    for key in node.path[:-1]:
        data = data.get(key) if isinstance(data, dict) else None
    return Siblings(own, tuple(data)) if isinstance(data, dict) else None


class MockTarget(Target):
    """Answers from the first route that matches and is not used up; counts what it did."""

    spec: MockTargetSpec

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, MockTargetSpec)
        self.mock = spec.mock
        self.mock_state = MockState(spec.mock.routes)
        self.grpc_hits = [0] * len(spec.mock.grpc)  # answers per gRPC rule
        self.index = PathIndex([route.match.path for route in spec.mock.routes])
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._fallback: Target | None = None  # the `proxy:` fallback, found at start
        self._unbound = "the target was not started"  # why there is none

    async def start(self) -> None:
        """Find the `proxy:` fallback among the service's targets, unless the fallbacks loop."""
        siblings = self.context.siblings
        chain = [self.name]
        proxy = self.mock.fallback.proxy
        while proxy is not None:
            chain.append(proxy)
            if proxy in chain[:-1]:
                self._unbound = f"fallbacks loop: {' -> '.join(chain)}"
                self.notify("error", f"mock {self.name!r}: {self._unbound}")
                return
            target = siblings.get(proxy)
            proxy = target.mock.fallback.proxy if isinstance(target, MockTarget) else None
        if self.mock.fallback.proxy is not None:
            self._fallback = siblings.get(self.mock.fallback.proxy)
            self._unbound = "it is not among its service's targets"

    def details(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": str(self.mock.file) if self.mock.file else None}
        fallback = self.mock.fallback
        data["fallback"] = (
            f"proxy {fallback.proxy}" if fallback.proxy
            else f"status {fallback.respond.status}" if fallback.respond else "404 (default)"
        )
        data.update(self.mock_state.to_json())
        if self.mock.grpc:  # listed as routes, so that status and the TUI show them alike
            data["routes"] = [*data["routes"], *(
                {"index": r.index, "name": _rule_name(r), "hits": self.grpc_hits[i]}
                for i, r in enumerate(self.mock.grpc))]
            data["matched"] += sum(self.grpc_hits)
        return data

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        if exchange.request_headers is None:
            exchange.request_headers = list(request.headers.items())
        body = await _read_body(request, exchange)
        view = RequestView(request.method, request.path, request.query.copy(),
                           CIMultiDict(request.headers), body)
        route, respond = self._pick(view)
        if route is not None:
            _note(exchange, {"matched": route.index, "route": route.name})
            assert respond is not None
            return await self._answer(request, exchange, respond, view, route.delay)
        closest = self.closest(view)  # once: with thousands of routes it is the costly part
        self.mock_state.miss(request.method, request.path, _closest_line(closest))
        _note(exchange, {"matched": None, "route": None})
        fallback = self.mock.fallback
        if fallback.proxy is not None:
            target = self._fallback
            if target is None:
                raise TargetUnavailable(
                    f"mock {self.name!r} cannot fall back to {fallback.proxy!r}: {self._unbound}",
                    502,
                )
            return await target.handle_http(_with_length(request, exchange), exchange)
        if fallback.respond is not None:
            return await self._answer(request, exchange, fallback.respond, view, 0.0)
        return self._not_found(request, exchange, closest)

    answers_h2 = True  # gRPC rules: a call on an http2 or grpc service is answered here

    async def serve_h2(self, stream: H2Stream, headers: H2Headers, exchange: Exchange) -> None:
        mock = self.mock
        rule = await serve_call(stream, headers, exchange, mock.grpc, mock.schema, self.sleep)
        if rule is None:
            self.mock_state.miss(exchange.method or "POST", exchange.path or "", None)
            _note(exchange, {"matched": None, "route": None})
        else:
            self.grpc_hits[mock.grpc.index(rule)] += 1
            _note(exchange, {"matched": rule.index, "route": f"grpc[{rule.index}] {rule.method}"})

    def _pick(self, view: RequestView) -> tuple[Route | None, Respond | None]:
        """The first available route that matches, counted; no await between test and count."""
        state, routes = self.mock_state, self.mock.routes
        for position in self.index.candidates(view.path):  # the routes its path can match
            route = routes[position]
            if not state.available(route):
                continue
            params = route.match.test(view)
            if params is not None:
                view.params = params
                return route, state.take(route)
        return None, None

    def closest(self, view: RequestView) -> list[dict[str, Any]]:
        """The routes that came nearest to matching, with the first reason each did not.

        Ranking explains every route it looks at (~10 µs each, on the event loop), so a mock of
        more than CLOSEST_SCAN routes looks at the routes whose path fits and the first
        CLOSEST_SCAN of the file, not all of them."""
        routes = self.mock.routes
        if len(routes) > CLOSEST_SCAN:
            fits = self.index.candidates(view.path)
            chosen = sorted(set(range(CLOSEST_SCAN)).union(itertools.islice(fits, CLOSEST_SCAN)))
            routes = tuple(routes[i] for i in chosen)
        ranked = []
        for route in routes:
            score, why = route.match.explain(view)
            if why == "matches" and not self.mock_state.available(route):
                why = f"answered its {route.times} time{'s' if route.times != 1 else ''} already"
            ranked.append((score, route, why))
        ranked.sort(key=lambda item: -item[0])
        return [
            {"index": r.index, "route": r.name, "why": why}
            for _, r, why in ranked[:CLOSEST_SHOWN]
        ]

    def _not_found(
        self, request: FrontRequest, exchange: Exchange, closest: list[dict[str, Any]]
    ) -> Response:
        body = json.dumps(
            {
                "error": "no-mock-route",
                "reason": f"no route of mock {self.name!r} matches {request.method} {request.path}",
                "service": self.context.service,
                "target": self.name,
                "closest": closest,
            },
            indent=2,
        ).encode()
        response = Response(status=404, body=body, content_type="application/json",
                            headers={"x-devamb-error": "no-mock-route"})
        _record(exchange, response, body)
        return response

    async def _answer(
        self,
        request: FrontRequest,
        exchange: Exchange,
        respond: Respond,
        view: RequestView,
        delay: float,
    ) -> StreamResponse:
        wait = respond.delay if respond.delay is not None else delay
        if wait:
            await self.sleep(wait)
        headers = _render_headers(respond, view)
        if respond.file is not None:
            return await self._send_file(request, exchange, respond, headers)
        if respond.has_json:
            body = json.dumps(_render_json(respond.json, view), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        elif respond.body is not None:
            body = respond.body.render(view).encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            body = b""
        response = Response(status=respond.status, body=body, headers=headers)
        _record(exchange, response, body)
        return response

    async def _send_file(
        self,
        request: FrontRequest,
        exchange: Exchange,
        respond: Respond,
        headers: CIMultiDict[str],
    ) -> StreamResponse:
        path = respond.file
        assert path is not None
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise TargetUnavailable(f"mock body file {path}: {exc.strerror or exc}", 500) from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if "Content-Type" not in headers:
                guessed = mimetypes.guess_type(path.name)[0]
                headers["Content-Type"] = guessed or "application/octet-stream"
            response = StreamResponse(status=respond.status, headers=headers)
            response.content_length = size
            exchange.status = respond.status
            exchange.response_headers = list(response.headers.items())
            exchange.mark_first_byte()
            await response.prepare(request)
            if request.method != "HEAD":
                while chunk := await asyncio.to_thread(handle.read, FILE_CHUNK):
                    exchange.response_body.add(chunk)
                    await response.write(chunk)
            await response.write_eof()
        return response


def _rule_name(rule: GrpcRule) -> str:
    asked = f" {json.dumps(rule.request, ensure_ascii=False)}" if rule.request else ""
    return f"grpc {rule.method}{asked}"


def _closest_line(closest: list[dict[str, Any]]) -> str | None:
    best = closest[:1]
    return f"routes[{best[0]['index']}] {best[0]['route']}: {best[0]['why']}" if best else None


def _render_headers(respond: Respond, view: RequestView) -> CIMultiDict[str]:
    """The respond's headers for this request. A value a template filled with a line break or
    another control character would split or corrupt the head: the answer is a 500
    `bad-mock-response` instead (as a proxy answers an upstream's invalid header with a 502)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, template in respond.headers:
        value = template.render(view)
        bad = BAD_HEADER_VALUE.search(value)
        if bad is not None:
            raise UpstreamFailed(
                500, "bad-mock-response",
                f"the mock's header {name} rendered from the request holds {bad.group()!r}; "
                "a header value cannot hold line breaks or control characters",
            )
        headers.add(name, value)
    return headers


def _render_json(value: Any, view: RequestView) -> Any:
    if isinstance(value, Template):
        return value.render_value(view)
    if isinstance(value, dict):
        return {k: _render_json(v, view) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, view) for v in value]
    return value


def _record(exchange: Exchange, response: Response, body: bytes) -> None:
    exchange.mark_first_byte()
    exchange.status = response.status
    exchange.response_headers = list(response.headers.items())
    exchange.response_body.add(body)


def _note(exchange: Exchange, mock: dict[str, Any]) -> None:
    """What the mock did with the exchange, once the record has a place for notes."""
    own_notes = getattr(exchange, "own_notes", None)
    if own_notes is not None:
        own_notes()["mock"] = mock


async def _read_body(request: FrontRequest, exchange: Exchange) -> bytes | None:
    """The request body read whole (kept for a proxy fallback), or None when it is too big."""
    if exchange.body_buffer is not None:  # a retry policy read it already
        return exchange.body_buffer
    if not request.body_exists:
        return b""
    length = request.content_length
    if length is not None and length > MAX_BODY:
        return None  # streamed on to a fallback, never matched on
    await request.send_continue()
    data = bytearray()
    async for chunk in request.iter_body():
        data += chunk
        if len(data) > MAX_BODY:
            raise TargetUnavailable(
                f"a mock reads request bodies whole, up to {MAX_BODY} bytes", 413
            )
    body = bytes(data)
    exchange.request_body.add(body)
    exchange.body_buffer = body
    return body


def _with_length(request: FrontRequest, exchange: Exchange) -> FrontRequest:
    """A chunked request whose body the mock read: re-sent with a Content-Length."""
    body = exchange.body_buffer
    if body is None or request.content_length is not None:
        return request
    headers = CIMultiDict(request.headers)
    headers.popall("Transfer-Encoding", None)
    headers["Content-Length"] = str(len(body))
    return request.with_headers(headers)
