"""What can be replayed, and how an HTTP/2 copy's request headers are made."""

from __future__ import annotations

from typing import Any

import pytest

from devamb.control.protocol import ControlError
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.replay import (
    check_replayable,
    grpc_message_count,
    replay_of,
    streaming_kind,
)
from devamb.service.replay_h2 import replay_headers


def message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def preview(data: bytes, limit: int = 64 * 1024) -> BodyPreview:
    body = BodyPreview(limit)
    body.add(data)
    return body


def call(request: bytes = b"", response: bytes = b"", protocol: str = "grpc",
         **fields: Any) -> Exchange:
    base: dict[str, Any] = dict(
        method="POST", path="/t.S/M", status=200,
        request_headers=[(":method", "POST"), (":scheme", "http"), (":path", "/t.S/M"),
                         (":authority", "up:1"), ("content-type", "application/grpc"),
                         ("te", "trailers"), ("x-team", "a"), ("authorization", "Basic x"),
                         ("x-devamb-target", "up"), ("content-length", "7")],
        request_body=preview(request), response_body=preview(response),
    )
    base.update(fields)
    return Exchange(3, "svc", "up", protocol, "127.0.0.1:1", **base)


def test_message_counts_from_the_framing() -> None:
    assert grpc_message_count(b"") == 0
    assert grpc_message_count(message(b"abc")) == 1
    assert grpc_message_count(message(b"") + message(b"xy") + message(b"z")) == 3
    assert grpc_message_count(message(b"abcdef")[:7]) == 1  # a preview cut inside one


@pytest.mark.parametrize(
    ("request_body", "response_body", "notes", "kind"),
    [
        (message(b"a"), message(b"b"), None, None),
        (message(b"a"), b"", None, None),  # an error status: no reply
        (message(b"a"), message(b"b") * 3, None, "server-streaming"),
        (message(b"a") * 2, message(b"b"), None, "client-streaming"),
        (message(b"a") * 2, message(b"b") * 2, None, "bidi-streaming"),
        (message(b"a"), message(b"b"), {"requests": 1, "responses": 4}, "server-streaming"),
    ],
)
def test_streaming_kinds(request_body: bytes, response_body: bytes, notes: Any,
                         kind: str | None) -> None:
    record = call(request_body, response_body, notes={"grpc": notes} if notes else {})
    assert streaming_kind(record) == kind


def test_a_plain_http2_stream_is_unary_whatever_its_bytes() -> None:
    record = call(message(b"a") * 2, message(b"b") * 2, protocol="http2",
                  request_headers=[("content-type", "application/octet-stream")])
    assert streaming_kind(record) is None
    check_replayable(record)


def test_refusals_say_why() -> None:
    with pytest.raises(ControlError, match="is a server-streaming call; only unary calls"):
        check_replayable(call(message(b"a"), message(b"b") * 2))
    cut = call(request_body=preview(message(b"a" * 100), limit=10))
    with pytest.raises(ControlError, match=r"only 10 of 105 request body bytes were recorded"):
        check_replayable(cut)
    with pytest.raises(ControlError, match="exchange 3 was refused before its request was read"):
        check_replayable(call(method=None))
    unknown = call(request_headers=None, status=400, error="no target 'x'; known: up")
    with pytest.raises(ControlError, match=r"answered by devamb itself \(400: no target 'x'"):
        check_replayable(unknown)


def test_the_copy_carries_the_recorded_headers_and_the_marker() -> None:
    headers = replay_headers(call(), "other", "tok", leave_out={"Authorization"})
    assert headers == [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/t.S/M"),
        (b":authority", b"up:1"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        (b"x-team", b"a"), (b"x-devamb-replay", b"tok:3"), (b"x-devamb-target", b"other"),
    ]
    assert replay_of("tok:3", "tok") == 3 and replay_of("bad:3", "tok") is None
