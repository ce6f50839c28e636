"""Recording: exchanges going through a service, turned into mock routes.

Each exchange is read through the service's Redaction (named headers and fields masked, `${VAR}`
secrets masked everywhere) and its volatile response headers are dropped. Identical requests seen
several times become one route, with a `sequence` when the answers differ; requests to the same
method, path and query whose JSON bodies differ become one route each, matched on the fields that
tell them apart. `devamb record SERVICE` drives a RecordingSession from the engine's events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devamb.inspect.body import decode_text, media_type
from devamb.inspect.filter import compile_filter
from devamb.inspect.masking import MASK
from devamb.targets.mock import grpc_recording
from devamb.targets.mock.writer import Answer, RouteDraft, literal_path, write_mock_file

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.inspect.redaction import Redaction

VOLATILE_HEADERS = frozenset(
    {
        # set per response by servers and proxies
        "date", "server", "content-length", "transfer-encoding", "connection", "keep-alive",
        "via", "age", "expires", "last-modified", "alt-svc", "nel", "report-to",
        # request and trace ids
        "x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid", "x-amzn-trace-id",
        "x-amz-request-id", "x-amz-id-2", "x-trace-id", "traceparent", "tracestate",
        "x-b3-traceid", "x-b3-spanid", "x-cloud-trace-context", "cf-ray", "x-runtime",
        "x-response-time", "x-envoy-upstream-service-time", "server-timing", "x-served-by",
        "x-cache", "x-cache-hits", "x-timer",
        # devamb's own
        "x-devamb-error",
    }
)
MAX_RECORDED = 5000  # exchanges one session keeps; later ones are counted, not kept
OVER_LIMIT = "over the limit"


@dataclass
class Observed:
    """One request and its answer, redacted, as recording and HAR import see it."""

    method: str
    path: str  # percent-decoded, without the query
    query: list[tuple[str, str]]
    body: bytes
    body_type: str | None
    answer: Answer


def observed_target(target: str) -> tuple[str, list[tuple[str, str]]]:
    """`/a%20b?x=1` (or a full URL) -> ('/a b', [('x', '1')])."""
    parts = urlsplit(target)
    return unquote(parts.path or "/"), parse_qsl(parts.query, keep_blank_values=True)


def answer_from(
    status: int,
    headers: list[tuple[str, str]],
    data: bytes,
    content_type: str | None,
    *,
    size: int | None = None,
    truncated: bool = False,
    binary_note: str | None = None,
) -> Answer:
    """An Answer: volatile headers dropped, the body as JSON, text or bytes (for a file)."""
    kept = [(k, v) for k, v in headers if k.lower() not in VOLATILE_HEADERS]
    answer = Answer(status, kept)
    if truncated:
        answer.note = (
            f"truncated: the upstream sent {size} bytes, devamb kept {len(data)} "
            f"(raise the service's inspect.bodies to record more)"
        )
    if not data:
        return answer
    kind = media_type(content_type)
    text = None if kind.startswith(("image/", "audio/", "video/", "font/")) else decode_text(data)
    if text is not None and not truncated and _jsonish(kind, text):
        try:
            answer.json = json.loads(text)
            return answer
        except ValueError:
            pass
    if text is not None:
        answer.body = text
    else:
        answer.data = data
        answer.note = answer.note or binary_note
    return answer


def _jsonish(kind: str, text: str) -> bool:
    if kind == "application/json" or kind.endswith("+json"):
        return True
    return not kind and text.lstrip()[:1] in ("{", "[")


def routes_from(observed: list[Observed]) -> list[RouteDraft]:
    """Group observations into routes (see the module's docstring), most specific first."""
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Observed]] = {}
    for item in observed:
        groups.setdefault((item.method, item.path, tuple(sorted(item.query))), []).append(item)
    drafts: list[tuple[int, int, RouteDraft]] = []
    first_of_path: dict[tuple[str, str], int] = {}
    for order, ((method, path, query), items) in enumerate(groups.items()):
        first = first_of_path.setdefault((method, path), order)
        for draft in _split_by_body(method, path, list(query), items):
            drafts.append((first, order, draft))
    drafts.sort(key=lambda d: (d[0], -d[2].constraints, d[1]))
    return [d for _, _, d in drafts]


def _split_by_body(
    method: str, path: str, query: list[tuple[str, str]], items: list[Observed]
) -> list[RouteDraft]:
    variants: dict[str, list[Observed]] = {}
    for item in items:
        variants.setdefault(_body_key(item), []).append(item)
    pattern = literal_path(path)
    parsed = [_json_object(v[0]) for v in variants.values()]
    if len(variants) == 1 or any(p is None for p in parsed):
        return [RouteDraft(method, pattern, query, {}, [i.answer for i in items])]
    leaves = [_leaves(p) for p in parsed]
    names = sorted(set().union(*leaves))
    telling = [
        n for n in names
        if len({json.dumps(leaf.get(n, _MISSING), sort_keys=True) for leaf in leaves}) > 1
        and all(leaf.get(n) != MASK for leaf in leaves)
    ]
    drafts: dict[str, RouteDraft] = {}
    for leaf, group in zip(leaves, variants.values(), strict=True):
        match = {n: leaf.get(n, {"present": False}) for n in telling}
        key = json.dumps(match, sort_keys=True)
        draft = drafts.setdefault(key, RouteDraft(method, pattern, query, match))
        draft.answers.extend(i.answer for i in group)
    return list(drafts.values())


_MISSING = "\x00missing"


def _body_key(item: Observed) -> str:
    parsed = _json_object(item)
    if parsed is not None:
        return "json:" + json.dumps(parsed, sort_keys=True)
    return "raw:" + base64.b64encode(item.body).decode()


def _json_object(item: Observed) -> dict[str, Any] | None:
    if not item.body:
        return None
    try:
        value = json.loads(item.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths of scalar leaves (lists by index); keys holding a dot are left out."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            if "." not in key:
                out.update(_leaves(item, f"{prefix}{key}."))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            out.update(_leaves(item, f"{prefix}{index}."))
    elif prefix:
        out[prefix[:-1]] = value
    return out


@dataclass
class RecordingSession:
    """Collects one service's exchanges; `write()` turns them into a mock file at `to`."""

    service: str
    filter: str | None = None
    to: Path = Path("mock.yaml")
    limit: int = MAX_RECORDED
    observed: list[Observed] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    notify: Callable[[str, str], None] | None = field(default=None, repr=False)  # (level, text)
    grpc: bool = False  # an http2 or grpc service: its gRPC calls become `grpc:` rules
    calls: grpc_recording.Calls = field(default_factory=grpc_recording.Calls)  # gRPC's
    _matches: Callable[[Exchange], bool] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        """Raises FilterError (with a column) for a bad filter expression."""
        self._matches = compile_filter(self.filter) if self.filter else None

    def add(self, exchange: Exchange, redaction: Redaction) -> bool:
        """Keep the exchange if it belongs to this recording; False (and why, counted) if not."""
        why = self._refusal(exchange)
        if why is not None:
            if why != "other service":
                self.skipped[why] = self.skipped.get(why, 0) + 1
            if why == OVER_LIMIT and self.skipped[why] == 1 and self.notify is not None:
                self.notify("warning", f"recording {self.service} {self.limit_text()}; "
                                       "stop it and record again for more")
            return False
        if self.grpc:
            return self._add_call(exchange, redaction)
        detail = redaction.detail(exchange)
        path, query = observed_target(detail.get("path") or "/")
        request = detail["request_body"]
        response = detail["response_body"]
        self.observed.append(
            Observed(
                method=detail.get("method") or "GET",
                path=path,
                query=query,
                body=_bytes(request),
                body_type=request.get("content_type"),
                answer=answer_from(
                    int(detail["status"]),
                    [(k, v) for k, v in detail["response_headers"]],
                    _bytes(response),
                    response.get("content_type"),
                    size=response.get("size"),
                    truncated=bool(response.get("truncated")),
                ),
            )
        )
        return True

    def _add_call(self, exchange: Exchange, redaction: Redaction) -> bool:
        why = self.calls.add(exchange, redaction)
        if why is not None:
            self.skipped[why] = self.skipped.get(why, 0) + 1
            return False
        return True

    def _refusal(self, exchange: Exchange) -> str | None:
        if exchange.service != self.service:
            return "other service"
        if self.grpc:
            why = grpc_recording.refusal(exchange)
            if why is None and self._matches is not None and not self._matches(exchange):
                why = "filtered out"
            if why is None and self.recorded >= self.limit:
                why = OVER_LIMIT
            return why
        if exchange.protocol != "http" or exchange.status is None:
            return "not an HTTP answer"
        if exchange.error is not None:
            return "failed"
        if exchange.faults:
            return "injected fault"
        if exchange.status == 101:
            return "WebSocket"
        if self._matches is not None and not self._matches(exchange):
            return "filtered out"
        if len(self.observed) >= self.limit:
            return OVER_LIMIT
        return None

    def routes(self) -> list[RouteDraft]:
        return routes_from(self.observed)

    @property
    def recorded(self) -> int:
        return self.calls.count if self.grpc else len(self.observed)

    def write(self, to: Path | None = None) -> Path:
        if self.grpc:
            rules = self.calls.rules()
            comment = (
                f"Recorded by devamb from service {self.service!r}: {self.calls.count} gRPC "
                "calls, "
                f"{len(rules)} rules" + (f", filter {self.filter!r}" if self.filter else "")
                + ".\nResponses are encoded with the service's proto: or descriptor_set:.\n"
                + (f"The recording {self.limit_text()}.\n" if self.dropped else "")
                + "Secrets are masked; edit freely."
            )
            return grpc_recording.write_grpc_mock_file(rules, to or self.to, comment)
        routes = self.routes()
        comment = (
            f"Recorded by devamb from service {self.service!r}: {len(self.observed)} exchanges, "
            f"{len(routes)} routes" + (f", filter {self.filter!r}" if self.filter else "") + ".\n"
            + (f"The recording {self.limit_text()}.\n" if self.dropped else "")
            + "Secrets are masked and volatile headers dropped; edit freely."
        )
        return write_mock_file(routes, to or self.to, comment)

    @property
    def dropped(self) -> int:
        """Exchanges that came after the limit was reached: counted, not recorded."""
        return self.skipped.get(OVER_LIMIT, 0)

    def limit_text(self) -> str:
        """What the limit did, for the notice, `record stop` and the mock file's comment."""
        later = f"{self.dropped} later exchanges" if self.dropped > 1 else "later exchanges"
        return f"reached its limit of {self.limit} exchanges: {later} were not recorded"

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "to": str(self.to),
            "filter": self.filter,
            "recorded": self.recorded,
            "limit": self.limit,
            "dropped": self.dropped,
            "skipped": dict(self.skipped),
        }


def _bytes(body: dict[str, Any]) -> bytes:
    data = body.get("data") or ""
    return base64.b64decode(data) if body.get("encoding") == "base64" else data.encode()
