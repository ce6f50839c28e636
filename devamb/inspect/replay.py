"""Replaying a recorded HTTP exchange through its service's own listener.

The replay goes through the whole request path (target choice, faults, recording) like any
request; a header carrying the engine's private token marks it, so the listener records it as a
replay and honours its target even where `target_header` is off.
"""

from __future__ import annotations

import os

from devamb.control.protocol import ControlError
from devamb.inspect.exchange import Exchange

REPLAY_HEADER = "X-Devamb-Replay"
TARGET_HEADER = "X-Devamb-Target"
NOT_REPLAYED = frozenset(
    {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via",
     "transfer-encoding", "content-length", "connection", "x-devamb-target", "x-devamb-replay"}
)


H2_PROTOCOLS = frozenset({"http2", "grpc"})
REPLAYABLE = frozenset({"http"}) | H2_PROTOCOLS
GRPC_PREFIX = 5  # a gRPC message's prefix: compressed flag (1 byte), length (4 bytes, big end)


def new_token() -> str:
    return os.urandom(16).hex()  # secrets.token_hex: without hmac/_hashlib (OpenSSL's digest
    # tables, ~0.7 MiB of an engine's RSS, issue 22)


def replay_of(header: str | None, token: str) -> int | None:
    """The id an incoming replay header names, if it carries this engine's token."""
    if not header:
        return None
    from hmac import compare_digest  # by the first replay, not at start (see new_token)

    given, _, exchange_id = header.partition(":")
    if not compare_digest(given, token) or not exchange_id.isdigit():
        return None
    return int(exchange_id)


def check_replayable(original: Exchange) -> None:
    """Raise ControlError saying why `original` cannot be sent again, if it cannot."""
    if original.protocol == "tcp":
        raise ControlError(f"exchange {original.id} is a TCP connection; it cannot be replayed")
    if original.protocol not in REPLAYABLE:
        raise ControlError(f"exchange {original.id} ({original.protocol}) cannot be replayed")
    if original.protocol in H2_PROTOCOLS:
        if not original.request_headers:  # (an unknown X-Devamb-Target, say)
            raise ControlError(
                f"exchange {original.id} was answered by devamb itself ({original.status}: "
                f"{original.error}); it never reached a target, so there is nothing to replay"
            )
        streaming = streaming_kind(original)
        if streaming is not None:
            raise ControlError(
                f"exchange {original.id} is a {streaming} call; only unary calls (one request "
                f"message, at most one response) can be replayed"
            )
    if original.method is None:
        raise ControlError(f"exchange {original.id} was refused before its request was read")
    if "devamb" in original.notes:  # answered by devamb itself: no target ever saw it
        code = original.notes["devamb"].get("error", "refused")
        raise ControlError(
            f"exchange {original.id} was answered by devamb itself ({original.status} {code}); "
            f"it never reached a target, so there is nothing to replay"
        )
    body = original.request_body
    if body.truncated:
        raise ControlError(
            f"exchange {original.id}: only {len(body.data)} of {body.size} request body bytes "
            f"were recorded (raise inspect.bodies to replay it)"
        )


async def send_replay(original: Exchange, listen_url: str, target: str, token: str) -> int:
    """Send the recorded request again; returns the status the listener answered with."""
    check_replayable(original)
    body = original.request_body
    recorded = original.request_headers or []
    headers = [(k, v) for k, v in recorded if k.lower() not in NOT_REPLAYED]
    headers += [(REPLAY_HEADER, f"{token}:{original.id}"), (TARGET_HEADER, target)]
    import aiohttp  # its client (~13 MiB): only once something is replayed

    async with aiohttp.ClientSession(
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    ) as session, session.request(
        original.method or "GET",
        listen_url + (original.path or "/"),
        headers=headers,
        data=bytes(body.data) if body.size else None,
        allow_redirects=False,
    ) as response:
        await response.read()
        return response.status


def is_grpc(exchange: Exchange) -> bool:
    """A gRPC call: so recorded, or sent with content-type application/grpc (+proto, ...)."""
    if exchange.protocol == "grpc" or "grpc" in exchange.notes:
        return True
    return any(
        k.lower() == "content-type" and v.lower().startswith("application/grpc")
        for k, v in exchange.request_headers or ()
    )


def streaming_kind(exchange: Exchange) -> str | None:
    """"client-streaming", "server-streaming" or "bidi-streaming" for a gRPC call that is not
    unary, else None (a plain HTTP/2 stream is one request and one response). The decoded
    record's message counts decide when there are any; else the recorded bodies' framing."""
    if not is_grpc(exchange):
        return None
    notes = exchange.notes.get("grpc") or {}
    requests, responses = notes.get("requests"), notes.get("responses")
    if requests is None:
        requests = grpc_message_count(bytes(exchange.request_body.data))
    if responses is None:
        responses = grpc_message_count(bytes(exchange.response_body.data))
    many_in, many_out = (requests or 0) > 1, (responses or 0) > 1
    if many_in and many_out:
        return "bidi-streaming"
    if many_in:
        return "client-streaming"
    return "server-streaming" if many_out else None


def grpc_message_count(data: bytes) -> int:
    """How many length-prefixed gRPC messages start in `data` (a preview may end inside one)."""
    count = offset = 0
    while offset + GRPC_PREFIX <= len(data):
        count += 1
        offset += GRPC_PREFIX + int.from_bytes(data[offset + 1:offset + GRPC_PREFIX], "big")
    return count
