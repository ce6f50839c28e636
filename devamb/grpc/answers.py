"""What devamb itself answers on a gRPC call: a trailers-only response, the gRPC status an HTTP
status maps to, percent-encoded messages, and the client's `grpc-timeout` (the gRPC HTTP/2
protocol, grpc/doc/PROTOCOL-HTTP2.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from devamb.grpc.status import CODES

# grpc/doc/http-grpc-status-mapping.md: what a gRPC client reports for an HTTP status.
HTTP_TO_GRPC = {
    400: CODES["INTERNAL"],
    401: CODES["UNAUTHENTICATED"],
    403: CODES["PERMISSION_DENIED"],
    404: CODES["UNIMPLEMENTED"],
    429: CODES["UNAVAILABLE"],
    502: CODES["UNAVAILABLE"],
    503: CODES["UNAVAILABLE"],
    504: CODES["UNAVAILABLE"],
}
_TIMEOUT = re.compile(r"^([0-9]{1,8})([HMSmun])$")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def grpc_of_http(status: int) -> int:
    """The gRPC status a client sees for an HTTP status (UNKNOWN for the unlisted ones)."""
    return HTTP_TO_GRPC.get(status, CODES["UNKNOWN"])


def percent_encode(message: str) -> str:
    """grpc-message: UTF-8, with bytes outside printable ASCII (and '%') as %XX."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}"
        for b in message.encode("utf-8")
    )


def grpc_timeout(value: str | None) -> float | None:
    """Seconds in a `grpc-timeout` header (e.g. 100m, 5S); None when absent or malformed."""
    if value is None:
        return None
    m = _TIMEOUT.match(value.strip())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None


def trailers_only(code: int, message: str,
                  headers: Mapping[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    """A trailers-only response: HTTP 200, the gRPC status and message in the one HEADERS."""
    out = [(b":status", b"200"), (b"content-type", b"application/grpc"),
           (b"grpc-status", str(code).encode())]
    if message:
        out.append((b"grpc-message", percent_encode(message).encode("ascii")))
    for name, value in (headers or {}).items():
        key = name.lower()
        if key not in ("content-type", "grpc-status", "grpc-message") and not key.startswith(":"):
            out.append((key.encode("latin-1"), value.encode("latin-1")))
    return out
