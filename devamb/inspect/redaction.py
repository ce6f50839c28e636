"""Masks what must not be shown before an exchange leaves the engine (TUI, CLI, HAR, curl).

Two layers:
- **named**: sensitive headers (DEFAULT_HEADERS plus any named) and fields named in
  `inspect.redact` — at any depth of a JSON body, in form bodies and in query strings. A service may
  opt out (`enabled=False`).
- **secrets**: every value that came from a `${VAR}` in the profile, anywhere in any text (headers,
  URL, path, bodies, error), in every form `masking.Redactor` knows (any case, URL-encoded,
  JSON-escaped, base64 as in a `Basic` credential, IDNA). Never optional.

Best effort by design where input is partial: a truncated JSON body cannot be parsed, so its named
fields are masked by a pattern (scalar values only), and a secret cut off by the preview's end is
masked from its first three characters.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from devamb.control.protocol import ExchangeSummary
from devamb.inspect.body import decode_text, media_type, render_body
from devamb.inspect.masking import MASK, Redactor

if TYPE_CHECKING:
    from devamb.inspect.exchange import BodyPreview, Exchange

DEFAULT_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
)
_SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
_MIN_PARTIAL = 3  # a secret's prefix this long at a truncated preview's end is masked
_MASK_BYTES = MASK.encode()


def secret_variants(secret: str) -> set[str]:
    """Whole forms a secret commonly takes on the wire: raw, lowercased, URL-encoded,
    JSON-escaped. (`Redactor` masks more, character by character; these literal forms serve
    to find a secret cut off at the end of a truncated preview.)"""
    forms = {
        secret,
        secret.lower(),
        quote(secret, safe=""),
        quote(secret),  # "/" kept, as in paths
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {form for form in forms if form}


class Redaction:
    """What to mask for one service; `detail(exchange)` is the main entry point."""

    def __init__(
        self,
        secrets: Iterable[str] = (),
        headers: Iterable[str] = DEFAULT_HEADERS,
        json_fields: Iterable[str] = (),
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.headers = frozenset(h.lower() for h in (*DEFAULT_HEADERS, *headers))
        self.json_fields = frozenset(f.lower() for f in json_fields)
        secrets = tuple(s for s in secrets if s)
        variants = set().union(*(secret_variants(s) for s in secrets))
        self._secrets = sorted(variants, key=len, reverse=True)
        self._mask_text = Redactor(secrets)
        names = "|".join(re.escape(f) for f in sorted(self.json_fields, key=len, reverse=True))
        self._query = (
            re.compile(rf"(?i)(^|[?&;])({names})=([^&#;]*)") if names and enabled else None
        )
        self._json_scalar = (
            re.compile(rf'(?i)("(?:{names})"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}}\]]+)'.encode())
            if names and enabled
            else None
        )

    @classmethod
    def from_names(
        cls, names: Iterable[str], secrets: Iterable[str] = (), enabled: bool = True
    ) -> Redaction:
        """From a profile's `inspect.redact` list: each name is a header and a field name."""
        names = tuple(names)
        return cls(secrets=secrets, headers=names, json_fields=names, enabled=enabled)

    # --- text ---------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """Secrets masked; with named redaction on, named query parameters too (URLs, paths)."""
        text = self._mask_text(text)
        if self._query is not None:
            text = self._query.sub(lambda m: f"{m[1]}{m[2]}={MASK}", text)
        return text

    def header(self, name: str, value: str) -> str:
        """A header's value as shown: named headers masked (keeping an auth scheme or cookie
        names), secrets masked in every header."""
        if self.enabled:
            lower = name.lower()
            if lower in self.headers:
                value = _mask_header(lower, value)
        return self._mask_text(value)

    def headers_list(self, headers: Iterable[tuple[str, str]] | None) -> list[list[str]]:
        # str(): aiohttp's header names are `istr`, which JSON takes but YAML writers refuse
        return [[self._mask_text(str(k)), self.header(str(k), str(v))] for k, v in headers or ()]

    # --- bodies -------------------------------------------------------------------------------

    def body_bytes(self, data: bytes, content_type: str | None, truncated: bool) -> bytes:
        """The body with secrets and named fields masked (JSON at any depth, form fields)."""
        data = self._mask_secret_bytes(data, truncated)
        if not self.json_fields or not self.enabled or not data:
            return data
        kind = media_type(content_type)
        text = decode_text(data, truncated)
        if text is None:
            return data
        if kind == "application/x-www-form-urlencoded" and self._query is not None:
            return self._query.sub(lambda m: f"{m[1]}{m[2]}={MASK}", text).encode()
        stripped = text.lstrip()[:1]
        if not (kind == "application/json" or kind.endswith("+json") or stripped in ("{", "[")):
            return data
        try:
            value = json.loads(text)
        except ValueError:
            assert self._json_scalar is not None
            return self._json_scalar.sub(lambda m: m[1] + b'"' + _MASK_BYTES + b'"', data)
        if _mask_fields(value, self.json_fields):
            return json.dumps(value, ensure_ascii=False).encode()
        return data

    def body(self, preview: BodyPreview, content_type: str | None) -> dict[str, Any]:
        """A JSON-able body: rendered for people (`kind`, `text`), exact (`data` as UTF-8 text or
        base64 per `encoding`), with the full `size`, bytes `captured` and `truncated`."""
        return self.body_from_bytes(
            bytes(preview.data), preview.size, content_type, truncated=preview.truncated
        )

    def body_from_bytes(
        self, data: bytes, size: int, content_type: str | None, *, truncated: bool
    ) -> dict[str, Any]:
        captured = len(data)
        data = self.body_bytes(data, content_type, truncated)
        rendered = render_body(data, content_type, truncated)
        text = None if rendered.kind == "binary" else decode_text(data, truncated)
        return {
            "kind": rendered.kind,
            "text": self._mask_text(rendered.text),
            "encoding": "base64" if text is None else "utf-8",
            "data": base64.b64encode(data).decode() if text is None else self._mask_text(text),
            "content_type": content_type,
            "size": size,
            "captured": captured,
            "truncated": truncated,
        }

    def _mask_secret_bytes(self, data: bytes, truncated: bool) -> bytes:
        if not self._mask_text:
            return data
        data = self._mask_text.mask_bytes(data)
        if truncated:
            for secret in self._secrets:
                raw = secret.encode()
                for length in range(len(raw) - 1, _MIN_PARTIAL - 1, -1):
                    if data.endswith(raw[:length]):
                        return data[:-length] + _MASK_BYTES
        return data

    # --- records ------------------------------------------------------------------------------

    def summary(self, exchange: Exchange) -> ExchangeSummary:
        """`exchange.to_json()` with its path and error masked (the same keys)."""
        masked: ExchangeSummary = self._walk(dict(exchange.to_json()))
        self._mask_grpc(masked.get("notes"))
        return masked

    def detail(self, exchange: Exchange) -> dict[str, Any]:
        """Everything recorded, redacted and JSON-able: the summary fields plus url, ttfb_ms,
        attempts, faults, request/response headers as [name, value] lists and bodies as dicts
        (see `body`), a WebSocket's `messages` (see `WsMessage.to_json`); `redacted` says
        whether named redaction applied."""
        raw = exchange.detail()
        for key in ("request_body", "request_body_size", "response_body", "response_body_size",
                    "messages"):
            raw.pop(key, None)
        out = self._walk(raw)
        self._mask_grpc(out.get("notes"))
        if exchange.messages is not None:  # a WebSocket's: each masked as a body is
            out["messages"] = [
                self._walk(m.to_json(self.body_bytes(m.preview, None, m.truncated)))
                for m in exchange.messages.items
            ]
        out["request_headers"] = self.headers_list(exchange.request_headers)
        out["response_headers"] = self.headers_list(exchange.response_headers)
        out["request_body"] = self.body(
            exchange.request_body, _content_type(exchange.request_headers)
        )
        out["response_body"] = self.body(
            exchange.response_body, _content_type(exchange.response_headers)
        )
        out["redacted"] = self.enabled
        return out

    def _mask_grpc(self, notes: dict[str, Any] | None) -> None:
        """Named fields in a gRPC call's decoded messages (notes.grpc.messages[].json), masked
        as in a JSON body (the walk masked the secrets already)."""
        grpc = (notes or {}).get("grpc")
        if not self.enabled or not self.json_fields or not isinstance(grpc, dict):
            return
        for message in grpc.get("messages") or ():
            if isinstance(message, dict) and message.get("json") is not None:
                _mask_fields(message["json"], self.json_fields)

    def _walk(self, value: Any) -> Any:
        """Every string in a JSON-able structure masked (bytes become masked text)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes | bytearray):
            return self.text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {self._mask_text(str(k)): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value


def _content_type(headers: Iterable[tuple[str, str]] | None) -> str | None:
    for name, value in headers or ():
        if name.lower() == "content-type":
            return value
    return None


def _mask_header(lower_name: str, value: str) -> str:
    if lower_name in _SCHEME_HEADERS:
        scheme, sep, _ = value.strip().partition(" ")
        return f"{scheme} {MASK}" if sep else MASK
    if lower_name == "cookie":
        pairs = [p.strip() for p in value.split(";") if p.strip()]
        return "; ".join(_mask_pair(p) for p in pairs) or MASK
    if lower_name == "set-cookie":
        first, sep, attributes = value.partition(";")
        return _mask_pair(first.strip()) + (sep + attributes if sep else "")
    return MASK


def _mask_pair(pair: str) -> str:
    name, sep, _ = pair.partition("=")
    return f"{name}={MASK}" if sep else MASK


def _mask_fields(value: Any, names: frozenset[str]) -> bool:
    """Replace the values of keys named in `names` (lower case) at any depth; True if any."""
    changed = False
    if isinstance(value, dict):
        for key in value:
            if key.lower() in names:
                value[key] = MASK
                changed = True
            else:
                changed = _mask_fields(value[key], names) or changed
    elif isinstance(value, list):
        for item in value:
            changed = _mask_fields(item, names) or changed
    return changed
