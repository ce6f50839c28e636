"""Mock targets as `direct_response` routes: what answers the same every time maps; templates,
JSON-body matching, sequences and delays are reported and left out."""

from __future__ import annotations

import json
import re
from typing import Any

from devamb.export.context import Config, Context
from devamb.profile import display_path
from devamb.profile.problems import ProfileError
from devamb.profile.source import Path_, Source, read_source
from devamb.targets.mock.matching import PathPattern, ValueMatch
from devamb.targets.mock.routes import MockSpec, Respond, Route
from devamb.targets.mock.template import Template

MAX_BODY = 4096  # Envoy's default max_direct_response_body_size_bytes
NOT_FOUND = json.dumps({"error": "no-mock-route", "reason": "no mock route matches"})


def path_regex(pattern: PathPattern) -> str:
    """devamb's path pattern as RE2: `{name}` and `*` within a segment, `**` across."""
    out: list[str] = []
    text, i = pattern.text, 0
    while i < len(text):
        if text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif text[i] == "{":
            out.append("[^/]+")
            i = text.index("}", i) + 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)


def _literal(template: Template | None) -> str | None:
    """The template's text when it has no `{{…}}` expressions, else None."""
    if template is None:
        return ""
    if template.expressions:
        return None
    return "".join(str(p) for p in template.parts)


class _Templated(Exception):
    pass


def _plain(value: Any) -> Any:
    """A JSON body with its compiled templates as text; _Templated if one has `{{…}}`."""
    if isinstance(value, Template):
        text = _literal(value)
        if text is None:
            raise _Templated
        return text
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _value_match(name: str, match: ValueMatch) -> Config | None:
    if match.kind == "present":
        return {"name": name, "present_match": bool(match.value)}
    if match.kind == "regex":
        return {"name": name, "string_match": {"safe_regex": {"regex": match.source}}}
    if isinstance(match.value, str | int | float) and not isinstance(match.value, bool):
        return {"name": name, "string_match": {"exact": str(match.value)}}
    return None


def _match(route: Route) -> tuple[Config | None, str | None]:
    """Envoy's route match for the route, or (None, why not)."""
    m = route.match
    if m.json:
        return None, "it matches JSON body fields, which Envoy routes cannot"
    config: Config = {}
    if m.path is None:
        config["prefix"] = "/"
    elif m.path.literal:
        config["path"] = m.path.text
    else:
        config["safe_regex"] = {"regex": path_regex(m.path)}
    headers = []
    if m.methods:
        headers.append({"name": ":method",
                        "string_match": {"safe_regex": {"regex": "|".join(m.methods)}}})
    for name, value in m.headers:
        header = _value_match(name.lower(), value)
        if header is None:
            return None, f"its header {name} match has no Envoy equivalent"
        headers.append(header)
    if headers:
        config["headers"] = headers
    query = []
    for name, value in m.query:
        param = _value_match(name, value)
        if param is None:
            return None, f"its query {name} match has no Envoy equivalent"
        query.append(param)
    if query:
        config["query_parameters"] = query
    return config, None


def direct_response(respond: Respond) -> tuple[Config | None, str | None]:
    """A route's `direct_response` plus its headers, or (None, why not)."""
    headers: list[tuple[str, str]] = []
    for name, template in respond.headers:
        value = _literal(template)
        if value is None:
            return None, f"its {name} header is a {{{{…}}}} template"
        headers.append((name, value))
    if respond.file is not None:
        try:
            body = respond.file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None, f"its body file {respond.file.name} is not readable UTF-8 text"
        content_type = None
    elif respond.has_json:
        try:
            body = json.dumps(_plain(respond.json), ensure_ascii=False)
        except _Templated:
            return None, "its JSON body is a {{…}} template"
        content_type = "application/json"
    else:
        text = _literal(respond.body)
        if text is None:
            return None, "its body is a {{…}} template"
        body = text
        content_type = "text/plain; charset=utf-8" if respond.body is not None else None
    if len(body.encode()) > MAX_BODY:
        return None, f"its body is above Envoy's {MAX_BODY} bytes for direct responses"
    if content_type and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", content_type))
    config: Config = {"direct_response": {"status": respond.status}}
    if body:
        config["direct_response"]["body"] = {"inline_string": body}
    if headers:
        config["response_headers_to_add"] = [
            {"header": {"key": n, "value": v.replace("%", "%%")},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for n, v in headers
        ]
    return config, None


def _mock_source(mock: MockSpec) -> Source | None:
    """The mock file's positions, so its lines point into it (None: inline in the profile)."""
    if mock.file is None:
        return None
    try:
        return read_source(mock.file, display_path(mock.file))
    except (OSError, ProfileError):  # it was read a moment ago; place the lines at the target
        return None


def mock_routes(ctx: Context, mock: MockSpec, path: Path_) -> list[Config]:
    """Routes for what maps, in the mock's order; the fallback is the caller's (a proxy
    fallback needs the other target's routes)."""
    routes: list[Config] = []
    source = _mock_source(mock)
    for route in mock.routes:
        if source is not None:
            where: Path_ = ("routes", route.index)
        else:
            where = (*path, "routes", route.index) if mock.file is None else path

        def note(message: str, route: Route = route, where: Path_ = where) -> None:
            ctx.report.note(where, f"route {route.name!r} {message}", source=source, key=False)

        match, why = _match(route)
        answer, why2 = direct_response(route.responds[0]) if match is not None else (None, None)
        if match is None or answer is None:
            note(f"not exported: {why or why2}")
            continue
        if len(route.responds) > 1:
            note("answers the first step of its sequence every time in Envoy")
        if route.delay or route.responds[0].delay:
            note("loses its delay in Envoy")
        if route.times is not None:
            note("answers every time in Envoy ('times' is dropped)")
        routes.append({"match": match, **answer})
    if mock.grpc:
        ctx.note(path, "gRPC mock rules are not exported")
    return routes


def fallback_answer(ctx: Context, mock: MockSpec, path: Path_) -> Config:
    """The catch-all direct response for requests no route matches."""
    respond = mock.fallback.respond
    if respond is not None:
        answer, why = direct_response(respond)
        if answer is not None:
            return answer
        ctx.note(path, f"the mock's fallback is not exported ({why}): Envoy answers 404")
    else:
        ctx.note(path, "unmatched requests get a plain 404 (devamb's also lists the closest "
                       "routes)")
    return {"direct_response": {"status": 404, "body": {"inline_string": NOT_FOUND}},
            "response_headers_to_add": [{
                "header": {"key": "Content-Type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}
