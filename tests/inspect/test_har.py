"""HAR 1.2 export, checked against the spec's required fields and types by a small validator."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.har import har_entry, to_har
from devamb.inspect.masking import MASK
from devamb.inspect.redaction import Redaction

# --- a validator for the HAR 1.2 spec (http://www.softwareishard.com/blog/har-12-spec/) ---------

NUMBER = (int, float)
ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")

# object name -> {field: (types, required)}; "comment" is allowed everywhere, "_custom" too.
SPEC: dict[str, dict[str, tuple[Any, bool]]] = {
    "log": {
        "version": (str, True),
        "creator": ("creator", True),
        "browser": ("creator", False),
        "pages": (list, False),
        "entries": (["entry"], True),
    },
    "creator": {"name": (str, True), "version": (str, True)},
    "entry": {
        "pageref": (str, False),
        "startedDateTime": ("iso", True),
        "time": (NUMBER, True),
        "request": ("request", True),
        "response": ("response", True),
        "cache": ("cache", True),
        "timings": ("timings", True),
        "serverIPAddress": (str, False),
        "connection": (str, False),
    },
    "request": {
        "method": (str, True),
        "url": ("url", True),
        "httpVersion": (str, True),
        "cookies": (["cookie"], True),
        "headers": (["pair"], True),
        "queryString": (["pair"], True),
        "postData": ("postData", False),
        "headersSize": (int, True),
        "bodySize": (int, True),
    },
    "response": {
        "status": (int, True),
        "statusText": (str, True),
        "httpVersion": (str, True),
        "cookies": (["cookie"], True),
        "headers": (["pair"], True),
        "content": ("content", True),
        "redirectURL": (str, True),
        "headersSize": (int, True),
        "bodySize": (int, True),
    },
    "cookie": {
        "name": (str, True),
        "value": (str, True),
        "path": (str, False),
        "domain": (str, False),
        "expires": ("iso", False),
        "httpOnly": (bool, False),
        "secure": (bool, False),
    },
    "pair": {"name": (str, True), "value": (str, True)},
    "postData": {
        "mimeType": (str, True),
        "params": (["param"], False),
        "text": (str, False),
    },
    "param": {
        "name": (str, True),
        "value": (str, False),
        "fileName": (str, False),
        "contentType": (str, False),
    },
    "content": {
        "size": (int, True),
        "compression": (int, False),
        "mimeType": (str, True),
        "text": (str, False),
        "encoding": (str, False),
    },
    "cache": {"beforeRequest": (dict, False), "afterRequest": (dict, False)},
    "timings": {
        "blocked": ("timing", False),
        "dns": ("timing", False),
        "connect": ("timing", False),
        "send": ("duration", True),
        "wait": ("duration", True),
        "receive": ("duration", True),
        "ssl": ("timing", False),
    },
}


def validate(value: Any, kind: Any, where: str = "") -> None:
    """Raise AssertionError naming the first place `value` breaks the spec."""
    if isinstance(kind, list):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            validate(item, kind[0], f"{where}[{i}]")
    elif kind == "iso":
        assert isinstance(value, str) and ISO_8601.fullmatch(value), f"{where}: not ISO 8601"
    elif kind == "url":
        assert isinstance(value, str) and re.match(r"[a-z]+://", value), f"{where}: not absolute"
    elif kind == "duration":
        assert type(value) in NUMBER and value >= 0, f"{where}: expected a number >= 0"
    elif kind == "timing":
        assert type(value) in NUMBER and (value >= 0 or value == -1), f"{where}: >= 0 or -1"
    elif isinstance(kind, str):
        assert isinstance(value, dict), f"{where}: expected an object"
        fields = SPEC[kind]
        for name, (types, required) in fields.items():
            if name in value:
                validate(value[name], types, f"{where}.{name}")
            else:
                assert not required, f"{where}: missing {name}"
        for name in value:
            assert name in fields or name == "comment" or name.startswith("_"), (
                f"{where}: unknown field {name}"
            )
    else:
        assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), (
            f"{where}: expected {kind}, got {value!r}"
        )
        if kind in (int, NUMBER) and where.endswith(("Size", ".size")):
            assert value >= -1, f"{where}: below -1"


def validate_har(document: dict[str, Any]) -> None:
    assert set(document) == {"log"}
    validate(document["log"], "log", "log")
    assert document["log"]["version"] == "1.2"
    for i, entry in enumerate(document["log"]["entries"]):
        timings = entry["timings"]
        total = sum(v for k, v in timings.items() if not k.startswith("_") and v != -1)
        assert entry["time"] == pytest.approx(total, abs=0.01), f"entries[{i}].time"
        postdata = entry["request"].get("postData")
        if postdata:
            assert not ("params" in postdata and not postdata.get("text")), "params xor text"
    json.dumps(document)  # serialisable as is


def test_validator_catches_mistakes() -> None:
    good = to_har([Redaction().detail(_exchange())], "1")
    validate_har(good)
    for path, bad in [
        (("log", "version"), None),
        (("log", "entries", 0, "startedDateTime"), "yesterday"),
        (("log", "entries", 0, "timings", "wait"), -1),
        (("log", "entries", 0, "response", "status"), "200"),
        (("log", "entries", 0, "request", "headers"), {"a": "b"}),
        (("log", "entries", 0, "request", "url"), "/relative"),
    ]:
        broken = json.loads(json.dumps(good))
        target = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = bad
        with pytest.raises(AssertionError):
            validate_har(broken)


# --- fixtures -----------------------------------------------------------------------------------


def _preview(data: bytes, limit: int = 64 * 1024) -> BodyPreview:
    body = BodyPreview(limit)
    body.add(data)
    return body


def _exchange(**fields: Any) -> Exchange:
    base: dict[str, Any] = dict(
        id=1,
        service="payments",
        target="staging",
        protocol="http",
        client="127.0.0.1:1",
        time=1_700_000_000.25,
        method="POST",
        path="/charge?amount=10&currency=eur&flag",
        url="https://pay.example.com/charge?amount=10&currency=eur&flag",
        status=201,
        duration_ms=40.0,
        ttfb_ms=30.0,
        request_headers=[
            ("Content-Type", "application/json"),
            ("Cookie", "sid=abc; theme=dark"),
            ("Authorization", "Bearer xyz"),
        ],
        response_headers=[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Set-Cookie", "sid=new; Path=/; Domain=example.com; HttpOnly; Secure"),
            ("Set-Cookie", "t=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"),
        ],
        request_body=_preview(b'{"amount": 10}'),
        response_body=_preview(b'{"id": "ch_1"}'),
    )
    base.update(fields)
    return Exchange(**base)


def _details() -> list[dict[str, Any]]:
    redaction = Redaction()
    records = [
        _exchange(),
        _exchange(  # binary response, no request body, a redirect
            id=2,
            time=1_699_999_999.0,
            method="GET",
            path="/logo",
            url="http://127.0.0.1:8001/logo",
            status=302,
            request_headers=[],
            response_headers=[("Content-Type", "image/png"), ("Location", "/logo2")],
            request_body=_preview(b""),
            response_body=_preview(b"\x89PNG\r\n\x1a\n\x00"),
        ),
        _exchange(  # failed before an upstream was chosen
            id=3,
            method="GET",
            path="/down",
            url=None,
            status=None,
            error="circuit-open",
            ttfb_ms=None,
            duration_ms=None,
            request_headers=[],
            response_headers=[],
            request_body=_preview(b""),
            response_body=_preview(b""),
        ),
        _exchange(  # form post, truncated response
            id=4,
            time=1_700_000_001.0,
            request_headers=[("Content-Type", "application/x-www-form-urlencoded")],
            request_body=_preview(b"a=1&b=two+words"),
            response_headers=[("Content-Type", "text/plain")],
            response_body=_preview(b"0123456789", limit=4),
            status=999,  # unknown to HTTPStatus
        ),
        Exchange(5, "cache", "local", "tcp", "127.0.0.1:1", time=1_700_000_000.0),
    ]
    return [redaction.detail(r) for r in records]


# --- tests --------------------------------------------------------------------------------------


def test_document_is_valid_har_1_2() -> None:
    document = to_har(_details(), "0.1.0")
    validate_har(document)
    assert document["log"]["creator"] == {"name": "devamb", "version": "0.1.0"}


def test_entries_oldest_first_and_tcp_left_out() -> None:
    entries = to_har(_details(), "0")["log"]["entries"]
    assert [e["_devamb"]["id"] for e in entries] == [2, 1, 3, 4]  # 1 and 3: same time, kept
    assert all(e["_devamb"]["service"] == "payments" for e in entries)


def test_entry_fields() -> None:
    entry = har_entry(_details()[0])
    assert entry["startedDateTime"] == "2023-11-14T22:13:20.250Z"
    assert entry["time"] == 40.0
    assert entry["timings"] == {
        "blocked": -1,
        "dns": -1,
        "connect": -1,
        "ssl": -1,
        "send": 0.0,
        "wait": 30.0,
        "receive": 10.0,
    }
    request, response = entry["request"], entry["response"]
    assert request["method"] == "POST" and request["httpVersion"] == "HTTP/1.1"
    assert request["queryString"] == [
        {"name": "amount", "value": "10"},
        {"name": "currency", "value": "eur"},
        {"name": "flag", "value": ""},
    ]
    assert request["cookies"] == [{"name": "sid", "value": MASK}, {"name": "theme", "value": MASK}]
    assert {"name": "Authorization", "value": f"Bearer {MASK}"} in request["headers"]
    assert request["postData"] == {"mimeType": "application/json", "text": '{"amount": 10}'}
    assert request["bodySize"] == 14
    assert response["status"] == 201 and response["statusText"] == "Created"
    assert response["content"] == {
        "size": 14,
        "mimeType": "application/json; charset=utf-8",
        "text": '{"id": "ch_1"}',
    }
    assert response["cookies"][0] == {
        "name": "sid",
        "value": MASK,
        "path": "/",
        "domain": "example.com",
        "httpOnly": True,
        "secure": True,
    }
    assert response["cookies"][1]["expires"].startswith("2015-10-21T07:28:00")
    assert entry["_devamb"] == {
        "id": 1,
        "service": "payments",
        "target": "staging",
        "protocol": "http",
        "attempts": 1,
        "faults": [],
        "replay_of": None,
    }


def test_binary_content_is_base64_and_redirect_is_kept() -> None:
    entry = har_entry(_details()[1])
    content = entry["response"]["content"]
    assert content["encoding"] == "base64" and content["mimeType"] == "image/png"
    assert base64.b64decode(content["text"]) == b"\x89PNG\r\n\x1a\n\x00"
    assert entry["response"]["redirectURL"] == "/logo2"
    assert "postData" not in entry["request"] and entry["request"]["bodySize"] == 0


def test_failed_exchange() -> None:
    detail = _details()[2]
    entry = har_entry(detail, base_urls={"payments": "http://127.0.0.1:9001/"})
    assert entry["request"]["url"] == "http://127.0.0.1:9001/down"
    assert har_entry(detail)["request"]["url"] == "http://localhost/down"
    response = entry["response"]
    assert response["status"] == 0 and response["statusText"] == ""
    assert response["_error"] == "circuit-open" and response["bodySize"] == -1
    assert entry["time"] == 0 and entry["timings"]["wait"] == 0


def test_form_post_and_truncated_content() -> None:
    entry = har_entry(_details()[3])
    post = entry["request"]["postData"]
    assert post["params"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "two words"}]
    assert post["text"] == "a=1&b=two+words"
    content = entry["response"]["content"]
    assert content["size"] == 10 and content["text"] == "0123" and content["_truncated"] is True
    assert "4 of 10" in content["comment"]
    assert entry["response"]["statusText"] == ""


def test_binary_request_body() -> None:
    record = _exchange(
        request_headers=[("Content-Type", "application/octet-stream")],
        request_body=_preview(b"\x00\xff"),
    )
    post = har_entry(Redaction().detail(record))["request"]["postData"]
    assert post["_encoding"] == "base64" and base64.b64decode(post["text"]) == b"\x00\xff"


def test_empty_export() -> None:
    document = to_har([], "0")
    validate_har(document)
    assert document["log"]["entries"] == []


# --- HTTP/2 and gRPC ----------------------------------------------------------------------------

GRPC_NOTES: dict[str, Any] = {  # the shared contract's shape (exchange.notes["grpc"])
    "service": "shop.Cart", "method": "Add", "status": 5, "code": "NOT_FOUND",
    "message": "no such item", "requests": 1, "responses": 0,
    "messages": [{"dir": "request", "size": 4, "compressed": False, "type": "shop.Item",
                  "json": {"id": 7}, "raw": None, "error": None}],
    "schema": "proto",
}


def _h2_exchange(**fields: Any) -> Exchange:
    base: dict[str, Any] = dict(
        protocol="http2",
        path="/items?page=2",
        url="http://127.0.0.1:8080/items?page=2",
        request_headers=[(":method", "POST"), (":scheme", "http"),
                         (":authority", "127.0.0.1:8080"), (":path", "/items?page=2"),
                         ("content-type", "text/plain"), ("authorization", "Bearer xyz")],
        response_headers=[(":status", "200"), ("content-type", "text/plain")],
        request_body=_preview(b"hello"),
        response_body=_preview(b"world"),
        status=200,
        notes={"http2": {"trailers": [("x-end", "done")],
                         "request_trailers": [("x-sum", "5")]}},
    )
    base.update(fields)
    return _exchange(**base)


def test_http2_stream_is_an_http2_entry_without_pseudo_headers() -> None:
    entry = har_entry(Redaction().detail(_h2_exchange()))
    request, response = entry["request"], entry["response"]
    assert request["httpVersion"] == response["httpVersion"] == "HTTP/2"
    assert not any(h["name"].startswith(":") for h in request["headers"] + response["headers"])
    assert {"name": "authorization", "value": f"Bearer {MASK}"} in request["headers"]
    assert (request["method"], request["url"]) == ("POST", "http://127.0.0.1:8080/items?page=2")
    assert request["queryString"] == [{"name": "page", "value": "2"}]
    assert request["postData"] == {"mimeType": "text/plain", "text": "hello"}
    assert response["status"] == 200 and response["content"]["text"] == "world"
    assert response["_trailers"] == [{"name": "x-end", "value": "done"}]
    assert request["_trailers"] == [{"name": "x-sum", "value": "5"}]
    assert entry["_devamb"]["protocol"] == "http2" and "_grpc" not in entry
    validate_har(to_har([Redaction().detail(_h2_exchange())], "0"))


def test_grpc_call_bodies_are_base64_application_grpc_with_its_record() -> None:
    request = b"\x00\x00\x00\x00\x02\x08\x07"
    reply = b"\x00\x00\x00\x00\x03abc"  # printable after its prefix: still base64
    record = _h2_exchange(
        protocol="grpc", path="/shop.Cart/Add", url="http://127.0.0.1:8080/shop.Cart/Add",
        request_headers=[(":method", "POST"), (":path", "/shop.Cart/Add"),
                         ("content-type", "application/grpc+proto"), ("te", "trailers")],
        response_headers=[(":status", "200")],
        request_body=_preview(request), response_body=_preview(reply),
        notes={"grpc": GRPC_NOTES,
               "http2": {"trailers": [("grpc-status", "5"), ("grpc-message", "no such item")]}},
    )
    document = to_har([Redaction().detail(record)], "0")
    validate_har(document)
    (entry,) = document["log"]["entries"]
    post = entry["request"]["postData"]
    assert post["mimeType"] == "application/grpc+proto" and post["_encoding"] == "base64"
    assert base64.b64decode(post["text"]) == request
    content = entry["response"]["content"]
    assert content["mimeType"] == "application/grpc" and content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == reply
    assert entry["response"]["_trailers"] == [
        {"name": "grpc-status", "value": "5"}, {"name": "grpc-message", "value": "no such item"},
    ]
    assert entry["_grpc"]["code"] == "NOT_FOUND"
    assert entry["_grpc"]["messages"][0]["json"] == {"id": 7}


def test_a_grpc_call_is_known_by_its_content_type_on_an_http2_service() -> None:
    record = _h2_exchange(
        request_headers=[("content-type", "application/grpc")],
        response_headers=[], request_body=_preview(b"ab"), response_body=_preview(b""),
        notes={},
    )
    entry = har_entry(Redaction().detail(record))
    assert entry["request"]["postData"]["_encoding"] == "base64"
    assert entry["response"]["content"]["mimeType"] == "application/grpc"
    assert "_trailers" not in entry["response"] and "_trailers" not in entry["request"]
