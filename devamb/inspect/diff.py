"""Structural diff of two responses: the same request answered by two targets.

Compares status, error, headers (names case-insensitive, volatile ones ignored) and bodies: JSON
field by field with paths like `body.items[2].price`, text by its first differing line, binary by
its first differing byte. Works on redacted details (`Redaction.detail`) and on raw ones
(`Exchange.detail()`).

HTTP/2 streams also compare their trailers (`trailers.NAME`); pseudo-headers are left out (the
status is compared as such). gRPC calls compare `grpc.status`, `grpc.code`, `grpc.message` and
`grpc.responses` (the count), and their decoded response messages field by field
(`grpc.messages[0].price`) when both sides were decoded to JSON; else their bodies' bytes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from devamb.inspect.body import decode_text, media_type

# Names or fnmatch patterns (lower case) of headers that differ between any two answers.
VOLATILE_HEADERS: frozenset[str] = frozenset(
    {
        "date",
        "age",
        "expires",
        "last-modified",
        "server-timing",
        "x-runtime",
        "x-response-time",
        "request-id",
        "*request-id",
        "*requestid",
        "*trace-id",
        "*traceid",
        "*span-id",
        "*spanid",
        "*correlation-id",
        "x-amz-id-2",
        "x-b3-*",
        "traceparent",
        "tracestate",
        "cf-ray",
        "x-cache",
        "x-cache-hits",
        "x-served-by",
        "x-timer",
        "via",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    }
)

Change = Literal["changed", "added", "removed"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference; `added` = only on the right, `removed` = only on the left (value None)."""

    path: str
    left: Any
    right: Any
    change: Change = "changed"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "left": self.left, "right": self.right, "change": self.change}

    def __str__(self) -> str:
        if self.change == "added":
            return f"{self.path}: only right: {self.right!r}"
        if self.change == "removed":
            return f"{self.path}: only left: {self.left!r}"
        return f"{self.path}: {self.left!r} -> {self.right!r}"


def diff_details(
    a: dict[str, Any],
    b: dict[str, Any],
    ignore_headers: Collection[str] = VOLATILE_HEADERS,
    ignore_fields: Iterable[str] = (),
) -> list[Difference]:
    """Differences between two exchange details' responses, in status, error, headers, body order.

    `ignore_headers` are names or fnmatch patterns; `ignore_fields` are JSON field names ignored at
    any depth, or full paths starting with `body` (`body.meta.generated_at`, `body.items[0].id`).
    """
    ignored_headers = _HeaderMatcher(ignore_headers)
    fields = {f.lower() for f in ignore_fields if not f.startswith(_PATHS)}
    paths = {f for f in ignore_fields if f.startswith(_PATHS)}
    out: list[Difference] = []
    for key in ("status", "error"):
        if a.get(key) != b.get(key):
            out.append(Difference(key, a.get(key), b.get(key)))
    out += _diff_headers(a.get("response_headers"), b.get("response_headers"), ignored_headers)
    grpc_a, grpc_b = _notes(a, "grpc"), _notes(b, "grpc")
    trailers = ignored_headers
    if grpc_a is not None or grpc_b is not None:  # grpc-status/-message: compared as grpc.*
        trailers = _HeaderMatcher({*ignore_headers, "grpc-status", "grpc-message"})
    out += _diff_headers(
        (_notes(a, "http2") or {}).get("trailers"), (_notes(b, "http2") or {}).get("trailers"),
        trailers, "trailers",
    )
    if grpc_a is None and grpc_b is None:
        out += _diff_bodies(_body(a), _body(b), fields, paths)
        return out
    left, right = grpc_a or {}, grpc_b or {}
    for key in ("status", "code", "message", "responses"):
        if left.get(key) != right.get(key):
            out.append(Difference(f"grpc.{key}", left.get(key), right.get(key)))
    replies_a, replies_b = _replies(grpc_a), _replies(grpc_b)
    if replies_a is not None and replies_b is not None:
        out += diff_json(replies_a, replies_b, "grpc.messages", fields, paths)
    else:  # not decoded (or raw) on one side at least: the bytes say whether they differ
        out += _diff_bodies(_body(a), _body(b), fields, paths)
    return out


_PATHS = ("body.", "body[", "grpc.")  # ignore_fields entries that are full paths


def _notes(detail: dict[str, Any], key: str) -> dict[str, Any] | None:
    found = (detail.get("notes") or {}).get(key)
    return found if isinstance(found, dict) else None


def _replies(grpc: dict[str, Any] | None) -> list[Any] | None:
    """The decoded response messages (the first 50), or None if any was not decoded to JSON."""
    if grpc is None:
        return None
    replies = [m.get("json") for m in grpc.get("messages") or () if m.get("dir") == "response"]
    return None if any(r is None for r in replies) else replies


def diff_json(
    left: Any,
    right: Any,
    path: str = "body",
    ignore_fields: Collection[str] = (),
    ignore_paths: Collection[str] = (),
) -> list[Difference]:
    """Field-by-field differences between two JSON values (fields compared case-insensitively
    against `ignore_fields`; `true` never equals `1`)."""
    out: list[Difference] = []
    _walk(left, right, path, {f.lower() for f in ignore_fields}, set(ignore_paths), out)
    return out


class _HeaderMatcher:
    def __init__(self, names: Collection[str]) -> None:
        lowered = {n.lower() for n in names}
        self.exact = {n for n in lowered if not any(c in n for c in "*?[")}
        self.patterns = [n for n in lowered if n not in self.exact]

    def __call__(self, name: str) -> bool:
        return name in self.exact or any(fnmatchcase(name, p) for p in self.patterns)


def _group(headers: Iterable[Any] | None) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers or ():
        grouped.setdefault(str(name).lower(), []).append(str(value))
    return grouped


def _diff_headers(
    left: Iterable[Any] | None,
    right: Iterable[Any] | None,
    ignored: _HeaderMatcher,
    where: str = "headers",
) -> list[Difference]:
    a, b = _group(left), _group(right)
    out = []
    for name in [*a, *(n for n in b if n not in a)]:
        if ignored(name) or name.startswith(":") or a.get(name) == b.get(name):
            continue  # (an HTTP/2 pseudo-header: :status is compared as the status)
        path = f"{where}.{name}"
        if name not in b:
            out.append(Difference(path, ", ".join(a[name]), None, "removed"))
        elif name not in a:
            out.append(Difference(path, None, ", ".join(b[name]), "added"))
        else:
            out.append(Difference(path, ", ".join(a[name]), ", ".join(b[name])))
    return out


@dataclass(frozen=True, slots=True)
class _Body:
    data: bytes
    text: str | None
    content_type: str | None
    size: int
    truncated: bool


def _body(detail: dict[str, Any]) -> _Body:
    """The response body of a redacted detail (a dict) or a raw one (bytes plus a size)."""
    content_type = None
    for name, value in detail.get("response_headers") or ():
        if str(name).lower() == "content-type":
            content_type = str(value)
    body = detail.get("response_body")
    if isinstance(body, dict):
        encoded = body.get("data") or ""
        base64ed = body.get("encoding") == "base64"
        data = base64.b64decode(encoded) if base64ed else encoded.encode()
        size = int(body.get("size") or len(data))
        truncated = bool(body.get("truncated"))
        text = None if base64ed else encoded
        return _Body(data, text, body.get("content_type") or content_type, size, truncated)
    data = bytes(body or b"")
    size = int(detail.get("response_body_size") or len(data))
    truncated = size > len(data)
    return _Body(data, decode_text(data, truncated), content_type, size, truncated)


def _diff_bodies(
    a: _Body, b: _Body, ignore_fields: Collection[str], ignore_paths: Collection[str]
) -> list[Difference]:
    """JSON structurally when both parse, else text by line, else bytes."""
    left, right = _parse_json(a), _parse_json(b)
    if left is not _NOT_JSON and right is not _NOT_JSON:
        out = diff_json(left, right, "body", ignore_fields, ignore_paths)
    elif a.text is not None and b.text is not None:
        out = _diff_text(a.text, b.text)
    else:
        out = _diff_bytes(a.data, b.data)
    if not out and (a.truncated or b.truncated) and a.size != b.size:
        out.append(Difference("body (size)", a.size, b.size))
    return out


_NOT_JSON = object()


def _parse_json(body: _Body) -> Any:
    if body.text is None or body.truncated:
        return _NOT_JSON
    kind = media_type(body.content_type)
    jsonish = kind == "application/json" or kind.endswith("+json")
    if not jsonish and body.text.lstrip()[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(body.text)
    except ValueError:
        return _NOT_JSON


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _walk(
    a: Any, b: Any, path: str, fields: set[str], paths: set[str], out: list[Difference]
) -> None:
    if path in paths:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key.lower() in fields:
                continue
            child = _key_path(path, key)
            if child in paths:
                continue
            if key not in b:
                out.append(Difference(child, a[key], None, "removed"))
            elif key not in a:
                out.append(Difference(child, None, b[key], "added"))
            else:
                _walk(a[key], b[key], child, fields, paths, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            child = f"{path}[{i}]"
            if child in paths:
                continue
            if i >= len(b):
                out.append(Difference(child, a[i], None, "removed"))
            elif i >= len(a):
                out.append(Difference(child, None, b[i], "added"))
            else:
                _walk(a[i], b[i], child, fields, paths, out)
    elif not _same(a, b):
        out.append(Difference(path, a, b))


def _diff_text(a: str, b: str) -> list[Difference]:
    if a == b:
        return []
    left, right = a.splitlines(), b.splitlines()
    for number in range(1, max(len(left), len(right)) + 1):
        line_a = left[number - 1] if number <= len(left) else None
        line_b = right[number - 1] if number <= len(right) else None
        if line_a != line_b:
            change: Change = "changed"
            if line_a is None or line_b is None:
                change = "added" if line_a is None else "removed"
            return [Difference(f"body (line {number})", line_a, line_b, change)]
    return [Difference("body (line endings)", a[-80:], b[-80:])]


def _diff_bytes(a: bytes, b: bytes) -> list[Difference]:
    if a == b:
        return []
    for offset in range(min(len(a), len(b))):
        if a[offset] != b[offset]:
            return [Difference(f"body (byte {offset})", f"0x{a[offset]:02x}", f"0x{b[offset]:02x}")]
    offset = min(len(a), len(b))
    return [Difference(f"body (byte {offset})", f"{len(a)} bytes", f"{len(b)} bytes")]
