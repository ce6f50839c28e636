"""Header rules of a reverse proxy: hop-by-hop removal and X-Forwarded-* / Via."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

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
    return f"{VIA}-{os.urandom(4).hex()}"  # secrets.token_hex without hmac/_hashlib


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


# the last request_lines made, with what it was made from (see request_lines)
_last: tuple[tuple[object, ...], bytes] = ((), b"")


def request_lines(
    incoming: CIMultiDictProxy[str],
    *,
    client_ip: str | None,
    keep_host: bool,
    extra: Mapping[str, str],
    host: str | None = None,
    memo: list[Any] | None = None,
) -> bytes:
    """The header lines to send upstream for a request that arrived with `incoming` (`Name:
    value` joined by CRLF, latin-1: what the head carries and the record keeps): hop-by-hop
    fields dropped, X-Forwarded-For/-Proto/-Host and Via added, then the target's `extra`
    ones (replacing any of the same name), then `host` as the Host header (when not
    `keep_host`).

    They depend on nothing else, and a client sends the same fields request after request:
    when the inputs are those of the last call, its lines are given again. Comparing the
    inputs costs far less than making the lines (bench/hotpath.py, three fields: ~14k
    instructions less an exchange, of ~264k); a miss costs the comparison besides. A
    target's `extra` fields (rarer) skip it.

    `memo`: the front end's for `incoming`'s fields (`FrontRequest.memo`: shared by the
    requests of a connection whose fields are the same, and only by them), holding the last
    lines made for them and with what: the fields are not compared again."""
    if extra:
        return _request_lines(incoming, client_ip, keep_host, extra, host)
    global _last
    key = (client_ip, keep_host, host, HOP.get())
    if memo is not None and memo[0] == key:
        return memo[1]
    fields = (*key, *incoming.items())
    last = _last
    if fields == last[0]:
        lines = last[1]
    else:
        lines = _request_lines(incoming, client_ip, keep_host, extra, host)
        _last = (fields, lines)
    if memo is not None:
        memo[0], memo[1] = key, lines
    return lines


def _request_lines(
    incoming: CIMultiDictProxy[str], client_ip: str | None, keep_host: bool,
    extra: Mapping[str, str], host: str | None,
) -> bytes:
    """`request_lines`, made: as text lines in one pass, with no list of pairs in between."""
    skip = _NOT_FORWARDED if keep_host else _NOT_FORWARDED_HOST
    if "Connection" in incoming:
        skip = skip | _dropped(incoming)
    mine = HOP.get()
    host = None if keep_host else host
    if extra or "X-Forwarded-For" in incoming or "X-Forwarded-Proto" in incoming \
            or "X-Forwarded-Host" in incoming or "Via" in incoming:  # (no generator: hot)
        out = CIMultiDict([field for field in incoming.items() if field[0].lower() not in skip])
        merged = _merged(incoming, out, client_ip, mine, extra)
        if host is not None:
            merged["Host"] = host
        lines = [f"{name}: {value}" for name, value in merged.items()]
    else:  # the usual request: nothing to merge, each added header goes at the end
        lines = [f"{name}: {value}" for name, value in incoming.items()
                 if name.lower() not in skip]
        if client_ip:
            lines.append(f"X-Forwarded-For: {client_ip}")
        lines.append("X-Forwarded-Proto: http")
        if "Host" in incoming:
            lines.append(f"X-Forwarded-Host: {incoming['Host']}")
        lines.append(f"Via: {mine}" if host is None else f"Via: {mine}\r\nHost: {host}")
    return "\r\n".join(lines).encode("latin-1", "replace")


def _merged(
    incoming: CIMultiDictProxy[str], out: CIMultiDict[str], client_ip: str | None, mine: str,
    extra: Mapping[str, str],
) -> CIMultiDict[str]:
    """`request_headers` for a request that carries headers of its own to merge with ours."""
    if client_ip:
        prior = incoming.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{prior}, {client_ip}" if prior else client_ip
    if "X-Forwarded-Proto" not in out:
        out["X-Forwarded-Proto"] = "http"
    if "X-Forwarded-Host" not in out and "Host" in incoming:
        out["X-Forwarded-Host"] = incoming["Host"]
    if "Via" in incoming:  # each hop's, in order
        out["Via"] = f"{', '.join(incoming.getall('Via'))}, {mine}"
    else:
        out["Via"] = mine
    for name, value in extra.items():
        out[name] = value
    return out


def upstream_response_lines(raw: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
    """The header lines to send the client for a response that arrived with `raw` fields
    (`Name: value` joined by CRLF), and whether they give a Content-Length.

    Bytes as they came (llhttp let no line break through), never a str per header: the
    response head is written from them and the record keeps them, decoded only when read
    (inspect.exchange.WireFields). One pass; the names a Connection header lists (rare) are
    dropped in a second.
    """
    global _last_answered
    last = _last_answered  # (one object: read once, replaced whole)
    if raw == last[0]:  # the last response's fields again: its lines (one compare in C, which
        return last[1], last[2]  # fails at the first field that differs, Date on a new second)
    kept = raw  # (a copy once a field is dropped)
    listed: bytes | None = None
    length = False
    for field in raw:
        if len(field[0]) not in _LOOKED_AT:  # (most names: no lowered copy to make and hash)
            continue
        lower = field[0].lower()
        if lower in HOP_BY_HOP_BYTES:
            if lower == b"connection":
                listed = field[1] if listed is None else listed + b"," + field[1]
            if kept is raw:
                kept = raw.copy()
            kept.remove(field)  # (found by identity: the first of equal fields is as good)
        elif lower == b"content-length":
            length = True
    if listed and listed.strip().lower() not in _HOP_TOKENS:  # it names more than options
        dropped = {t.strip().lower() for t in listed.split(b",")}
        kept = [field for field in kept if field[0].lower() not in dropped]
        length = any(name.lower() == b"content-length" for name, _ in kept)
    lines = b"\r\n".join(map(b": ".join, kept))  # one C loop
    if lines == last[1]:  # the last lines again, from other fields (one compare; a miss
        lines = last[1]  # fails early): the records share one bytes object of them
    _last_answered = (raw.copy(), lines, length)  # (a copy: the caller's list is its own)
    return lines, length


# the fields upstream_response_lines was last given and what it made of them: an upstream
# answering a resource again within the same second (its Date) sends the same head, whose
# pass over the fields is skipped, and its records then share one bytes object of its lines
# where each kept its own (~250 bytes a record of small objects while the store holds it)
_last_answered: tuple[list[tuple[bytes, bytes]], bytes, bool] = ([], b"", False)

# the lengths of the names upstream_response_lines looks for: another name is none of them
_LOOKED_AT = frozenset(map(len, HOP_BY_HOP_BYTES | {b"content-length"}))
# a Connection header naming only one of these (nearly every one) lists nothing else to drop
_HOP_TOKENS = (b"keep-alive", b"close", b"upgrade")
