"""Header rules of a reverse proxy: hop-by-hop removal and X-Forwarded-* / Via."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextvars import ContextVar

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
TARGET_OVERRIDE = "x-devamb-target"
REPLAY = "x-devamb-replay"
VIA = "1.1 devamb"
# The Via element the listener serving the current request adds (set per request task by
# service/http.py): its own pseudonym, so that a request coming back to it is seen as a loop.
HOP: ContextVar[str] = ContextVar("devamb_via", default=VIA)


def new_via() -> str:
    """A listener's own Via element, `1.1 devamb-<8 hex>`: unique to it, so that services
    chained in one engine, or engines chained, are not taken for a loop."""
    return f"{VIA}-{secrets.token_hex(4)}"


def looped(incoming: CIMultiDictProxy[str], via: str) -> bool:
    """Whether the request already went through the listener whose Via element is `via`."""
    return any(
        element.strip() == via
        for header in incoming.getall("Via", ())
        for element in header.split(",")
    )


def _dropped(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Hop-by-hop names plus any header the Connection header lists."""
    listed = headers.get("Connection")
    if not listed:
        return HOP_BY_HOP
    return HOP_BY_HOP | {token.strip().lower() for token in listed.split(",")}


# what never goes upstream, with the Host header and without (keep_host)
_NOT_FORWARDED = HOP_BY_HOP | {TARGET_OVERRIDE, REPLAY}
_NOT_FORWARDED_HOST = _NOT_FORWARDED | {"host"}


def request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    client_ip: str | None,
    keep_host: bool,
    extra: Mapping[str, str],
) -> CIMultiDict[str]:
    """Headers to send upstream for a request that arrived with `incoming`."""
    skip = _NOT_FORWARDED if keep_host else _NOT_FORWARDED_HOST
    if "Connection" in incoming:
        skip = skip | _dropped(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    add = out.add
    for name, value in incoming.items():
        if name.lower() not in skip:
            add(name, value)
    if client_ip:
        prior = incoming.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{prior}, {client_ip}" if prior else client_ip
    if "X-Forwarded-Proto" not in out:
        out["X-Forwarded-Proto"] = "http"
    if "X-Forwarded-Host" not in out and "Host" in incoming:
        out["X-Forwarded-Host"] = incoming["Host"]
    mine = HOP.get()
    if "Via" in incoming:  # each hop's, in order
        out["Via"] = f"{', '.join(incoming.getall('Via'))}, {mine}"
    else:
        out["Via"] = mine
    for name, value in extra.items():
        out[name] = value
    return out


def upstream_response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Headers to send the client for a response that arrived with `raw` headers.

    A plain list, built once: it is both what the response sends and what the exchange records.
    One pass; the names a Connection header lists (rare) are dropped in a second.
    """
    kept: list[tuple[str, str]] = []
    listed: bytes | None = None
    for name, value in raw:
        lower = name.lower()
        if lower in HOP_BY_HOP_BYTES:
            if lower == b"connection":
                listed = value if listed is None else listed + b"," + value
            continue
        kept.append((name.decode("latin-1"), value.decode("latin-1")))
    if listed and not _hop_only(listed):
        dropped = {t.strip().lower().decode("latin-1") for t in listed.split(b",")}
        kept = [(name, value) for name, value in kept if name.lower() not in dropped]
    return kept


_HOP_TOKENS = (b"keep-alive", b"close", b"upgrade")


def _hop_only(listed: bytes) -> bool:
    """A Connection header that names only hop-by-hop headers or options (`keep-alive`,
    `close`: nearly every one): nothing else to drop."""
    return listed.strip().lower() in _HOP_TOKENS
