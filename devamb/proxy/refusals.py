"""Requests the front end answers itself, as nginx does: limits exceeded (414, 431), and
framing a proxy cannot pass on faithfully: no HTTP/1.x version 400, another version 505, a
transfer coding other than `chunked` 501, an HTTP/1.1 request without `Host` or with two 400,
anything else llhttp refuses (including Content-Length with Transfer-Encoding, the classic
smuggling attempt) 400. Every refusal has `Connection: close`, an `x-devamb-error` code and no
traceback."""

from __future__ import annotations

import json
from collections.abc import Callable

import httptools
from multidict import CIMultiDictProxy

from devamb.proxy.response import REASONS


class Refusal(Exception):
    """A request the front end answers itself, with `status` and `Connection: close`."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code  # short and stable, sent as x-devamb-error: bad-request, ...
        self.reason = reason
        self.method: str | None = None  # as far as the request was read
        self.path: str | None = None
        self.headers: list[tuple[str, str]] = []

    def answer(self, body: bytes) -> bytes:
        """The whole response: status line, headers and `body` (JSON)."""
        return (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"x-devamb-error: %s\r\nConnection: close\r\n\r\n%s" % (
                self.status, REASONS.get(self.status, "Unknown").encode(), len(body),
                self.code.encode(), body,
            )
        )


# Records a refusal and gives the body to send with it (the listener's; see FrontServer).
RefusalHook = Callable[[Refusal, str | None], bytes]


def too_large() -> Refusal:
    return Refusal(431, "request-header-too-large", "request header too large")


def too_long() -> Refusal:
    return Refusal(414, "request-line-too-long", "request line too long")


def check_head(version: str, headers: CIMultiDictProxy[str]) -> None:
    """Refuse what llhttp lets through but nginx does not (RFC 9112 framing rules)."""
    if version not in ("1.1", "1.0"):
        if version == "0.9":  # llhttp's reading of a request line without a version
            raise Refusal(400, "bad-request", "bad request: the request line has no HTTP/1.x "
                                              "version (HTTP/0.9 is not supported)")
        raise _unsupported_version(f"HTTP/{version}")
    if "Transfer-Encoding" in headers:
        codings = ",".join(headers.getall("Transfer-Encoding"))
        if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
            raise _not_implemented(codings)
        if version == "1.0":
            raise Refusal(400, "bad-request", "bad request: Transfer-Encoding in an HTTP/1.0 "
                                              "request")
    if "Host" in headers:
        if len(headers.getall("Host")) > 1:
            raise Refusal(400, "bad-request", "bad request: more than one Host header")
    elif version == "1.1":
        raise Refusal(400, "bad-request", "bad request: an HTTP/1.1 request without Host")


def _unsupported_version(version: str) -> Refusal:
    return Refusal(505, "http-version-not-supported",
                   f"{version} is not supported: devamb speaks HTTP/1.0 and HTTP/1.1")


def _not_implemented(codings: str | None) -> Refusal:
    given = f"Transfer-Encoding {codings[:100]!r}" if codings is not None else (
        "a Transfer-Encoding with more after chunked"
    )
    return Refusal(501, "transfer-coding-not-implemented",
                   f"{given}: only chunked alone is supported")


def refusal_for(exc: httptools.HttpParserError) -> Refusal:
    cause = exc.__context__ or exc.__cause__
    if isinstance(cause, Refusal):
        return cause
    reason = str(exc)
    if reason == "Invalid HTTP version":  # well-formed HTTP/d.d, but neither 1.0 nor 1.1
        return _unsupported_version("this HTTP version")
    if reason == "Invalid `Transfer-Encoding` header value":  # chunked, then more codings
        return _not_implemented(None)
    if reason == "Pause on PRI/Upgrade":  # HTTP/2's preface, PRI * HTTP/2.0
        return _unsupported_version("HTTP/2 (prior knowledge)")
    return Refusal(400, "bad-request", f"bad request: {reason}")


def shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def refusal_body(refusal: Refusal, remote: str | None) -> bytes:
    """The body of a refusal when no hook is given."""
    return json.dumps({"error": refusal.code, "reason": refusal.reason}).encode()

