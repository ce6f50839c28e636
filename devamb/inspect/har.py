"""HAR 1.2 export (http://www.softwareishard.com/blog/har-12-spec/) of redacted exchange details.

Input is what `Redaction.detail` returns. TCP connections are not HTTP and are left out. devamb
extras use the spec's `_` prefix for custom fields: `_devamb` (id, service, target, protocol,
attempts, faults, replay_of), `_error`, `_truncated`, and `_encoding` on a base64 request body. A
relayed WebSocket's text and binary messages are in `_webSocketMessages`, as Chrome writes them
(`type` send or receive, `time` in unix seconds, `opcode`, `data`: text, or base64 for binary).

HTTP/2 streams (protocols http2 and grpc) are entries with httpVersion `HTTP/2`. Their
pseudo-headers are left out of `headers` (HAR has fields for them: method, url, status; tools
that turn a HAR into requests choke on `:path`). HAR has no trailers: they are in `_trailers`
(`[{name, value}]`) on the response, and on the request when the client sent any. A gRPC call's
bodies are base64 (length-prefixed protobuf messages) with mimeType `application/grpc`, and what
devamb decoded of it (service, method, status, messages) is in `_grpc`.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HTTP_VERSION = "HTTP/1.1"  # an http service's exchanges
HTTP2_VERSION = "HTTP/2"  # a stream of an http2 or grpc service (as Firefox writes it)
H2_PROTOCOLS = frozenset({"http2", "grpc"})
EXPORTED = frozenset({"http"}) | H2_PROTOCOLS
GRPC_MIME = "application/grpc"
FALLBACK_BASE = "http://localhost"  # for exchanges that failed before an upstream URL was chosen


def to_har(
    details: Iterable[dict[str, Any]],
    creator_version: str,
    *,
    base_urls: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A HAR 1.2 document, entries oldest first. `base_urls` (service -> listener URL) builds the
    URL of exchanges that have none (failed before an upstream was chosen)."""
    entries = [
        har_entry(d, base_urls=base_urls) for d in details if d.get("protocol", "http") in EXPORTED
    ]
    entries.sort(key=lambda e: e["startedDateTime"])
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "devamb", "version": creator_version},
            "entries": entries,
        }
    }


def har_entry(detail: dict[str, Any], *, base_urls: dict[str, str] | None = None) -> dict[str, Any]:
    """One HAR entry for one redacted HTTP exchange detail."""
    duration = _ms(detail.get("duration_ms"))
    ttfb = _ms(detail.get("ttfb_ms"))
    wait = min(ttfb, duration) if ttfb is not None and duration is not None else duration
    timings = {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": 0.0,
        "wait": wait or 0.0,
        "receive": max((duration or 0.0) - (wait or 0.0), 0.0),
    }
    entry: dict[str, Any] = {
        "startedDateTime": _iso(detail.get("time") or 0.0),
        "time": round(timings["send"] + timings["wait"] + timings["receive"], 3),
        "request": _request(detail, base_urls or {}),
        "response": _response(detail),
        "cache": {},
        "timings": timings,
        "_devamb": {
            key: detail.get(key)
            for key in ("id", "service", "target", "protocol", "attempts", "faults", "replay_of")
        },
    }
    grpc = (detail.get("notes") or {}).get("grpc")
    if grpc is not None:
        entry["_grpc"] = grpc
    messages = detail.get("messages")
    if messages is not None:
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = [
            {
                "type": "send" if m.get("direction") == "upstream" else "receive",
                "time": m.get("time"),
                "opcode": m.get("opcode"),
                "data": m.get("data", ""),
            }
            for m in messages
            if m.get("opcode") in (1, 2)  # as Chrome: data messages, not control frames
        ]
    return entry


def _h2(detail: dict[str, Any]) -> bool:
    return detail.get("protocol") in H2_PROTOCOLS


def _is_grpc(detail: dict[str, Any]) -> bool:
    """A gRPC call: so recorded, or sent with content-type application/grpc (+proto, ...)."""
    if detail.get("protocol") == "grpc" or (detail.get("notes") or {}).get("grpc") is not None:
        return True
    for name, value in detail.get("request_headers") or ():
        if str(name).lower() == "content-type":
            return str(value).lower().startswith(GRPC_MIME)
    return False


def _request(detail: dict[str, Any], base_urls: dict[str, str]) -> dict[str, Any]:
    headers = _headers(detail.get("request_headers"))
    url = detail.get("url") or ""
    if not urlsplit(url).scheme:
        base = base_urls.get(detail.get("service") or "", FALLBACK_BASE).rstrip("/")
        url = base + (detail.get("path") or "/")
    body = detail.get("request_body") or {}
    request: dict[str, Any] = {
        "method": detail.get("method") or "GET",
        "url": url,
        "httpVersion": HTTP2_VERSION if _h2(detail) else HTTP_VERSION,
        "cookies": _request_cookies(headers),
        "headers": headers,
        "queryString": [
            {"name": k, "value": v}
            for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": int(body.get("size") or 0),
    }
    grpc = _is_grpc(detail)
    if body.get("size") and detail.get("messages") is None:
        mime = body.get("content_type") or ""
        text, base64ed = _body_text(body, grpc)
        post: dict[str, Any] = {"mimeType": mime or (GRPC_MIME if grpc else ""), "text": text}
        if base64ed:
            post["_encoding"] = "base64"
        elif mime.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            post["params"] = [
                {"name": k, "value": v} for k, v in parse_qsl(post["text"], keep_blank_values=True)
            ]
        if body.get("truncated"):
            post["_truncated"] = True
            post["comment"] = _truncation_note(body)
        request["postData"] = post
    trailers = _trailers(detail, "request_trailers")
    if trailers is not None:
        request["_trailers"] = trailers
    return request


def _response(detail: dict[str, Any]) -> dict[str, Any]:
    headers = _headers(detail.get("response_headers"))
    status = detail.get("status") or 0
    body = detail.get("response_body") or {}
    grpc = _is_grpc(detail)
    content: dict[str, Any] = {
        "size": int(body.get("size") or 0),
        "mimeType": body.get("content_type") or _header(headers, "content-type")
        or (GRPC_MIME if grpc else ""),
    }
    if (body.get("captured") or body.get("data")) and detail.get("messages") is None:
        # (a WebSocket's are _webSocketMessages)
        content["text"], base64ed = _body_text(body, grpc)
        if base64ed:
            content["encoding"] = "base64"
    if body.get("truncated"):
        content["_truncated"] = True
        content["comment"] = _truncation_note(body)
    response: dict[str, Any] = {
        "status": status,
        "statusText": _reason(status),
        "httpVersion": HTTP2_VERSION if _h2(detail) else HTTP_VERSION,
        "cookies": _response_cookies(headers),
        "headers": headers,
        "content": content,
        "redirectURL": _header(headers, "location") or "",
        "headersSize": -1,
        "bodySize": int(body.get("size") or 0) if status else -1,
    }
    trailers = _trailers(detail, "trailers")
    if trailers is not None:
        response["_trailers"] = trailers
    if detail.get("error"):
        response["_error"] = detail["error"]
    return response


def _body_text(body: dict[str, Any], grpc: bool) -> tuple[str, bool]:
    """The HAR text of a recorded body and whether it is base64; a gRPC body always is (its
    messages are binary, even when they happen to be printable)."""
    data = body.get("data") or ""
    if body.get("encoding") == "base64":
        return data, True
    if grpc:
        return base64.b64encode(data.encode()).decode("ascii"), True
    return data, False


def _trailers(detail: dict[str, Any], key: str) -> list[dict[str, str]] | None:
    """An HTTP/2 stream's trailers (notes.http2.trailers / request_trailers) as HAR pairs."""
    pairs = ((detail.get("notes") or {}).get("http2") or {}).get(key)
    return None if pairs is None else _headers(pairs)


def _headers(pairs: Iterable[Any] | None) -> list[dict[str, str]]:
    """HAR name/value pairs; HTTP/2 pseudo-headers (`:path`, `:status`) are left out: HAR
    carries them in method, url and status."""
    return [
        {"name": str(name), "value": str(value)}
        for name, value in pairs or ()
        if not str(name).startswith(":")
    ]


def _header(headers: list[dict[str, str]], name: str) -> str | None:
    for header in headers:
        if header["name"].lower() == name:
            return header["value"]
    return None


def _request_cookies(headers: list[dict[str, str]]) -> list[dict[str, Any]]:
    cookies = []
    for header in headers:
        if header["name"].lower() == "cookie":
            for pair in header["value"].split(";"):
                name, sep, value = pair.strip().partition("=")
                if sep and name:
                    cookies.append({"name": name, "value": value})
    return cookies


def _response_cookies(headers: list[dict[str, str]]) -> list[dict[str, Any]]:
    cookies = []
    for header in headers:
        if header["name"].lower() != "set-cookie":
            continue
        first, *attributes = header["value"].split(";")
        name, sep, value = first.strip().partition("=")
        if not sep or not name:
            continue
        cookie: dict[str, Any] = {"name": name, "value": value}
        for attribute in attributes:
            key, _, val = attribute.strip().partition("=")
            key = key.lower()
            if key in ("path", "domain"):
                cookie[key] = val
            elif key == "expires":
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    cookie["expires"] = parsedate_to_datetime(val).isoformat()
            elif key == "httponly":
                cookie["httpOnly"] = True
            elif key == "secure":
                cookie["secure"] = True
        cookies.append(cookie)
    return cookies


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _truncation_note(body: dict[str, Any]) -> str:
    return f"devamb kept the first {body.get('captured', 0)} of {body.get('size', 0)} bytes"


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(float(timestamp), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: Any) -> float | None:
    return None if value is None else max(round(float(value), 3), 0.0)
