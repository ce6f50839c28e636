"""Structural diff of two responses: status, headers, JSON bodies field by field, text, bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devamb.inspect.diff import VOLATILE_HEADERS, Difference, diff_details, diff_json
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.redaction import Redaction


def raw(
    body: Any = None,
    status: int | None = 200,
    headers: list[tuple[str, str]] | None = None,
    content_type: str | None = "application/json",
    error: str | None = None,
) -> dict[str, Any]:
    """A raw `Exchange.detail()`-shaped dict."""
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    all_headers = [("Content-Type", content_type)] if content_type else []
    all_headers += headers or []
    return {
        "status": status,
        "error": error,
        "response_headers": [list(h) for h in all_headers],
        "response_body": data,
        "response_body_size": len(data),
    }


def paths(differences: list[Difference]) -> list[str]:
    return [d.path for d in differences]


def test_identical_responses_have_no_differences() -> None:
    a = raw({"id": 1, "items": [1, 2]}, headers=[("ETag", "x")])
    assert diff_details(a, dict(a)) == []


def test_json_fields_with_dotted_paths() -> None:
    a = raw({"items": [{"price": 1}, {"price": 2}, {"price": 3}], "ok": True, "meta": {"n": 1}})
    b = raw({"items": [{"price": 1}, {"price": 2}, {"price": 3.5}], "ok": True, "meta": {"n": 2}})
    assert diff_details(a, b) == [
        Difference("body.items[2].price", 3, 3.5),
        Difference("body.meta.n", 1, 2),
    ]


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({"a": 1}, {"a": 1.0}, []),  # the same number
        ({"a": True}, {"a": 1}, [Difference("body.a", True, 1)]),  # but not a bool
        ({"a": None}, {"a": 0}, [Difference("body.a", None, 0)]),
        ({"a": 1}, {}, [Difference("body.a", 1, None, "removed")]),
        ({}, {"b": None}, [Difference("body.b", None, None, "added")]),
        ([1, 2], [1], [Difference("body[1]", 2, None, "removed")]),
        ([1], [1, {"x": 1}], [Difference("body[1]", None, {"x": 1}, "added")]),
        ({"a": [1]}, {"a": {"0": 1}}, [Difference("body.a", [1], {"0": 1})]),
        ({"my key": 1}, {"my key": 2}, [Difference('body["my key"]', 1, 2)]),
        ({"a-b_c": 1}, {"a-b_c": 2}, [Difference("body.a-b_c", 1, 2)]),
        ("x", "y", [Difference("body", "x", "y")]),
    ],
)
def test_json_values(left: Any, right: Any, expected: list[Difference]) -> None:
    assert diff_json(left, right) == expected


def test_ignored_fields_at_any_depth_and_by_path() -> None:
    a = raw({"id": "r1", "generated_at": 1, "data": {"Generated_At": 5, "x": [{"id": 1, "v": 1}]}})
    b = raw({"id": "r2", "generated_at": 2, "data": {"Generated_At": 6, "x": [{"id": 2, "v": 2}]}})
    assert paths(diff_details(a, b)) == [
        "body.id",
        "body.generated_at",
        "body.data.Generated_At",
        "body.data.x[0].id",
        "body.data.x[0].v",
    ]
    assert paths(diff_details(a, b, ignore_fields=["generated_at", "id"])) == ["body.data.x[0].v"]
    assert paths(diff_details(a, b, ignore_fields=["body.id", "body.data.x[0]"])) == [
        "body.generated_at",
        "body.data.Generated_At",
    ]


def test_status_and_error() -> None:
    differences = diff_details(raw({}, status=200), raw(b"", status=None, error="upstream-timeout"))
    assert differences[:2] == [
        Difference("status", 200, None),
        Difference("error", None, "upstream-timeout"),
    ]


def test_headers_case_insensitive_and_volatile_ignored() -> None:
    a = raw(
        {},
        headers=[
            ("Date", "Mon"),
            ("X-Request-Id", "1"),
            ("X-Amzn-RequestId", "1"),
            ("X-B3-TraceId", "1"),
            ("Server-Timing", "db;dur=1"),
            ("Age", "1"),
            ("Content-Length", "2"),
            ("Cache-Control", "no-store"),
            ("X-Only-Left", "l"),
            ("Vary", "Accept"),
            ("Vary", "Origin"),
        ],
    )
    b = raw(
        {},
        headers=[
            ("date", "Tue"),
            ("x-request-id", "2"),
            ("x-amzn-requestid", "2"),
            ("x-b3-traceid", "2"),
            ("server-timing", "db;dur=9"),
            ("age", "9"),
            ("content-length", "3"),
            ("cache-control", "max-age=60"),
            ("vary", "Accept"),
            ("vary", "Origin"),
            ("X-Only-Right", "r"),
        ],
    )
    assert diff_details(a, b) == [
        Difference("headers.cache-control", "no-store", "max-age=60"),
        Difference("headers.x-only-left", "l", None, "removed"),
        Difference("headers.x-only-right", None, "r", "added"),
    ]
    assert paths(diff_details(a, b, ignore_headers=VOLATILE_HEADERS | {"cache-control"})) == [
        "headers.x-only-left",
        "headers.x-only-right",
    ]
    assert "headers.date" in paths(diff_details(a, b, ignore_headers=()))
    assert "headers.x-only-left" not in paths(diff_details(a, b, ignore_headers={"x-only-*"}))


def test_header_value_order_matters_for_repeated_headers() -> None:
    a = raw({}, headers=[("Vary", "A"), ("Vary", "B")])
    b = raw({}, headers=[("Vary", "B"), ("Vary", "A")])
    assert diff_details(a, b) == [Difference("headers.vary", "A, B", "B, A")]


def test_text_bodies_report_the_first_differing_line() -> None:
    a = raw(b"one\ntwo\nthree\n", content_type="text/plain")
    b = raw(b"one\nTWO\nthree\nfour\n", content_type="text/plain")
    assert diff_details(a, b) == [Difference("body (line 2)", "two", "TWO")]
    c = raw(b"one\ntwo\n", content_type="text/plain")
    assert diff_details(c, raw(b"one\ntwo\nthree", content_type="text/plain")) == [
        Difference("body (line 3)", None, "three", "added")
    ]
    assert diff_details(c, raw(b"one\r\ntwo\r\n", content_type="text/plain")) == [
        Difference("body (line endings)", "one\ntwo\n", "one\r\ntwo\r\n")
    ]


def test_json_against_non_json_is_a_text_difference() -> None:
    a = raw({"a": 1})
    b = raw(b"<html>oops</html>", content_type="text/html")
    assert diff_details(a, b) == [
        Difference("headers.content-type", "application/json", "text/html"),
        Difference("body (line 1)", '{"a": 1}', "<html>oops</html>"),
    ]


def test_binary_bodies_report_the_first_differing_byte() -> None:
    a = raw(b"\x89PNG\x00\x01\x02", content_type="image/png")
    b = raw(b"\x89PNG\x00\x01\x03\x04", content_type="image/png")
    assert diff_details(a, b) == [Difference("body (byte 6)", "0x02", "0x03")]
    c = raw(b"\x89PNG\x00\x01", content_type="image/png")
    assert diff_details(c, a) == [Difference("body (byte 6)", "6 bytes", "7 bytes")]


def test_truncated_previews_compare_as_text_and_by_size() -> None:
    a = raw(b'{"a": 1, "b"', content_type="application/json")
    b = dict(a, response_body_size=a["response_body_size"] + 50)
    a["response_body_size"] += 10
    assert diff_details(a, b) == [Difference("body (size)", 22, 62)]


def test_redacted_details_from_real_records() -> None:
    def record(target: str, body: bytes, request_id: str) -> dict[str, Any]:
        preview = BodyPreview()
        preview.add(body)
        exchange = Exchange(
            1,
            "payments",
            target,
            "http",
            "c",
            status=200,
            response_headers=[("Content-Type", "application/json"), ("X-Request-Id", request_id)],
            response_body=preview,
        )
        return Redaction(json_fields=["token"]).detail(exchange)

    a = record("local", b'{"token": "a", "total": 10, "at": "t1"}', "r1")
    b = record("staging", b'{"token": "b", "total": 12, "at": "t2"}', "r2")
    assert diff_details(a, b, ignore_fields=["at"]) == [Difference("body.total", 10, 12)]


def test_difference_output() -> None:
    assert str(Difference("status", 200, 503)) == "status: 200 -> 503"
    assert str(Difference("body.a", None, 1, "added")) == "body.a: only right: 1"
    assert str(Difference("body.a", 1, None, "removed")) == "body.a: only left: 1"
    assert Difference("body.a", 1, None, "removed").to_json() == {
        "path": "body.a",
        "left": 1,
        "right": None,
        "change": "removed",
    }


# --- HTTP/2 and gRPC ----------------------------------------------------------------------------


def grpc_call(
    replies: list[Any] | None, status: int = 0, code: str = "OK", message: str = "",
    trailers: list[tuple[str, str]] | None = None, body: bytes = b"\x00\x00\x00\x00\x01x",
) -> dict[str, Any]:
    """A raw detail of a gRPC call with notes["grpc"] shaped as the shared contract says."""
    messages = [
        {"dir": "request", "size": 2, "compressed": False, "type": "t.Req", "json": {"q": 1},
         "raw": None, "error": None},
    ]
    for reply in replies or ():
        messages.append({"dir": "response", "size": 9, "compressed": False, "type": "t.Rep",
                         "json": reply, "raw": None if reply is not None else [{"1": 2}],
                         "error": None})
    detail = raw(body, headers=[(":status", "200")], content_type="application/grpc")
    detail["notes"] = {
        "grpc": {"service": "t.S", "method": "M", "status": status, "code": code,
                 "message": message, "requests": 1, "responses": len(replies or ()),
                 "messages": messages, "schema": "proto"},
        "http2": {"trailers": trailers if trailers is not None
                  else [("grpc-status", str(status)), ("grpc-message", message)]},
    }
    return detail


def test_grpc_calls_compare_status_and_decoded_replies() -> None:
    a = grpc_call([{"total": 2, "items": [{"id": 1}], "at": "t1"}])
    b = grpc_call([{"total": 3, "items": [{"id": 1}], "at": "t2"}], status=5, code="NOT_FOUND",
                  message="gone", body=b"\x00\x00\x00\x00\x02yy")
    assert diff_details(a, b, ignore_fields=["at"]) == [
        Difference("grpc.status", 0, 5),
        Difference("grpc.code", "OK", "NOT_FOUND"),
        Difference("grpc.message", "", "gone"),
        Difference("grpc.messages[0].total", 2, 3),
    ]  # the trailers' grpc-status and grpc-message are the grpc.* lines; bodies not as bytes
    assert diff_details(a, b, ignore_fields=["grpc.messages[0].total", "at"])[-1].path == (
        "grpc.message"
    )
    assert diff_details(a, grpc_call([{"total": 2, "items": [{"id": 1}], "at": "t1"}])) == []


def test_grpc_reply_counts_and_undecoded_replies() -> None:
    one, two = grpc_call([{"n": 1}]), grpc_call([{"n": 1}, {"n": 2}])
    assert diff_details(one, two) == [
        Difference("grpc.responses", 1, 2),
        Difference("grpc.messages[1]", None, {"n": 2}, "added"),
    ]
    raw_a = grpc_call([None], body=b"\x00\x00\x00\x00\x01a")
    raw_b = grpc_call([None], body=b"\x00\x00\x00\x00\x01b")
    assert diff_details(raw_a, raw_b) == [Difference("body (byte 5)", "0x61", "0x62")]


def test_http2_trailers_compare_and_pseudo_headers_do_not() -> None:
    a = raw({"ok": 1}, headers=[(":status", "200")])
    b = raw({"ok": 1}, headers=[(":status", "201")])
    a["notes"] = {"http2": {"trailers": [["x-end", "done"]]}}
    b["notes"] = {"http2": {"trailers": [["x-end", "cut"], ["x-more", "1"]]}}
    assert diff_details(a, b) == [
        Difference("trailers.x-end", "done", "cut"),
        Difference("trailers.x-more", None, "1", "added"),
    ]


def test_grpc_calls_on_redacted_details() -> None:
    def record(reply: dict[str, Any]) -> Exchange:
        preview = BodyPreview()
        preview.add(b"\x00\x00\x00\x00\x00")
        return Exchange(1, "s", "t", "grpc", "c", status=200, response_body=preview,
                        response_headers=[(":status", "200")],
                        notes={"grpc": grpc_call([reply])["notes"]["grpc"]})

    redaction = Redaction()
    left, right = redaction.detail(record({"a": 1})), redaction.detail(record({"a": 2}))
    assert diff_details(left, right) == [Difference("grpc.messages[0].a", 1, 2)]
