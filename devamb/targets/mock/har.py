"""HAR 1.2 → mock routes: a browser's or devamb's export (`devamb export har`) becomes a mock.

Entries are redacted like recordings (a browser's HAR carries cookies and tokens) and grouped the
same way. Text and JSON bodies are written inline; a base64 (binary) body becomes a file beside
the mock, with a comment saying so. Failed entries (status 0, devamb's `_error`) are left out.

HTTP/2 entries (httpVersion `HTTP/2`, `h2`, `http/2.0`) are read like the others; HTTP/2
pseudo-headers (`:status`, which Chrome writes among the headers) are not kept as headers. gRPC
calls (content `application/grpc...`) are left out: an HTTP mock cannot answer them.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from devamb.inspect.redaction import Redaction
from devamb.targets.mock.recording import Observed, answer_from, observed_target, routes_from
from devamb.targets.mock.writer import RouteDraft


class HarError(ValueError):
    """Not a HAR document devamb can read."""


def load_har(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarError(f"cannot read HAR file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("log", {}).get("entries"), list):
        raise HarError(f"{path} is not a HAR file: no log.entries")
    return data


def observed_from_har(
    har: dict[str, Any], redaction: Redaction | None = None
) -> tuple[list[Observed], int]:
    """The entries as observations, oldest first, and how many were left out."""
    redaction = redaction or Redaction()
    entries = sorted(har["log"]["entries"], key=lambda e: e.get("startedDateTime", ""))
    observed: list[Observed] = []
    left_out = 0
    for entry in entries:
        request, response = entry.get("request") or {}, entry.get("response") or {}
        status = int(response.get("status") or 0)
        if status < 100 or response.get("_error") or status == 101 or _grpc(request, response):
            left_out += 1
            continue
        path, query = observed_target(redaction.text(request.get("url") or "/"))
        post = request.get("postData") or {}
        body_type = post.get("mimeType")
        body = _decode(post.get("text") or "", post.get("_encoding") or post.get("encoding"))
        content = response.get("content") or {}
        content_type = content.get("mimeType") or _header(response, "content-type")
        encoding = content.get("encoding")
        data = _decode(content.get("text") or "", encoding)
        truncated = bool(content.get("_truncated"))
        headers = [
            (h["name"], redaction.header(h["name"], h["value"]))
            for h in response.get("headers") or []
            if not str(h.get("name", "")).startswith(":")  # HTTP/2 pseudo-headers
        ]
        observed.append(
            Observed(
                method=(request.get("method") or "GET").upper(),
                path=path,
                query=query,
                body=redaction.body_bytes(body, body_type, False),
                body_type=body_type,
                answer=answer_from(
                    status,
                    headers,
                    redaction.body_bytes(data, content_type, truncated),
                    content_type,
                    size=content.get("size"),
                    truncated=truncated,
                    binary_note="binary body from the HAR's base64 text"
                    if encoding == "base64"
                    else None,
                ),
            )
        )
    return observed, left_out


def routes_from_har(har: dict[str, Any], redaction: Redaction | None = None) -> list[RouteDraft]:
    return routes_from(observed_from_har(har, redaction)[0])


def _decode(text: str, encoding: str | None) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            raise HarError("a base64 body does not decode") from None
    return text.encode()


def _header(message: dict[str, Any], name: str) -> str | None:
    for header in message.get("headers") or []:
        if str(header.get("name", "")).lower() == name:
            return str(header.get("value"))
    return None


def _grpc(request: dict[str, Any], response: dict[str, Any]) -> bool:
    """A gRPC call (its request or response content is application/grpc, +proto, ...)."""
    kinds = (
        (request.get("postData") or {}).get("mimeType"),
        (response.get("content") or {}).get("mimeType"),
        _header(request, "content-type"),
        _header(response, "content-type"),
    )
    return any(str(kind or "").lower().startswith("application/grpc") for kind in kinds)
