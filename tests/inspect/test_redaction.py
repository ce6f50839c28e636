"""Redaction: named headers and fields, and `${VAR}` secrets that never survive into any output."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from devamb.inspect.curl import to_curl
from devamb.inspect.diff import diff_details
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.har import to_har
from devamb.inspect.masking import MASK
from devamb.inspect.redaction import DEFAULT_HEADERS, Redaction, secret_variants

SECRET = 's3cr3t-T0ken/ü&"x y'  # special characters: every wire form differs
PASSWORD = "hunter2-correct-horse"


def preview(data: bytes, limit: int = 64 * 1024) -> BodyPreview:
    body = BodyPreview(limit)
    body.add(data)
    return body


def exchange(**fields: Any) -> Exchange:
    base: dict[str, Any] = dict(
        id=7,
        service="payments",
        target="staging",
        protocol="http",
        client="127.0.0.1:5123",
        method="POST",
        path="/charge?amount=10",
        url="https://payments.example.com/charge?amount=10",
        status=200,
        duration_ms=12.0,
        request_headers=[("Content-Type", "application/json")],
        response_headers=[("Content-Type", "application/json")],
    )
    base.update(fields)
    return Exchange(**base)


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer abc.def", f"Bearer {MASK}"),
        ("authorization", "Basic dXNlcjpwYXNz", f"Basic {MASK}"),
        ("AUTHORIZATION", "rawtoken", MASK),
        ("Proxy-Authorization", "Digest x=1", f"Digest {MASK}"),
        ("Cookie", "sid=abc; theme=dark", f"sid={MASK}; theme={MASK}"),
        ("cookie", "lonely", MASK),
        ("Set-Cookie", "sid=abc; Path=/; HttpOnly", f"sid={MASK}; Path=/; HttpOnly"),
        ("Set-Cookie", "sid=abc", f"sid={MASK}"),
        ("X-Api-Key", "k-123", MASK),
        ("x-api-key", "k-123", MASK),
        ("X-Session", "zzz", MASK),  # named by the profile
        ("Content-Type", "application/json", "application/json"),
        ("Accept", "*/*", "*/*"),
    ],
)
def test_named_headers(name: str, value: str, shown: str) -> None:
    redaction = Redaction(headers=["x-session"])
    assert redaction.header(name, value) == shown


def test_defaults_are_always_masked_and_extra_names_add_to_them() -> None:
    redaction = Redaction(headers=["X-Custom"])
    assert {h.lower() for h in DEFAULT_HEADERS} | {"x-custom"} == set(redaction.headers)
    assert Redaction(headers=()).header("Authorization", "t") == MASK


def test_secrets_are_masked_in_any_header() -> None:
    redaction = Redaction(secrets=["tok-123"])
    assert redaction.header("X-Debug", "sent tok-123 upstream") == f"sent {MASK} upstream"
    assert redaction.headers_list([("X-tok-123", "a")]) == [[f"X-{MASK}", "a"]]


# --- bodies -------------------------------------------------------------------------------------


def test_json_fields_at_any_depth_case_insensitively() -> None:
    redaction = Redaction(json_fields=["password", "card"])
    body = {
        "user": "bob",
        "Password": "p1",
        "nested": {"deeper": [{"password": "p2"}, {"card": {"number": "4242"}}]},
        "count": 3,
    }
    out = json.loads(redaction.body_bytes(json.dumps(body).encode(), "application/json", False))
    assert out == {
        "user": "bob",
        "Password": MASK,
        "nested": {"deeper": [{"password": MASK}, {"card": MASK}]},
        "count": 3,
    }


def test_json_left_byte_identical_when_nothing_named_is_present() -> None:
    data = b'{"a":   1,\n "b": [2]}'
    assert Redaction(json_fields=["password"]).body_bytes(data, "application/json", False) == data


def test_truncated_json_masks_scalar_fields_by_pattern() -> None:
    data = b'{"user": "bob", "password": "p\\"1", "pin": 1234, "token": "abcd'
    out = Redaction(json_fields=["password", "pin", "token"]).body_bytes(
        data, "application/json", True
    )
    text = out.decode()
    for leaked in ('p\\"1', "1234", "abcd"):
        assert leaked not in text
    assert '"user": "bob"' in text
    assert text.count(MASK) == 3


def test_form_bodies_and_query_strings_mask_named_fields() -> None:
    redaction = Redaction(json_fields=["password", "api_key"])
    form = b"user=bob&password=hunter2&x=1"
    assert (
        redaction.body_bytes(form, "application/x-www-form-urlencoded", False)
        == f"user=bob&password={MASK}&x=1".encode()
    )
    assert redaction.text("/login?API_KEY=abc&next=/&password=") == (
        f"/login?API_KEY={MASK}&next=/&password={MASK}"
    )
    assert redaction.text("/a?x_api_key=1") == "/a?x_api_key=1"  # whole names only


def test_binary_bodies_are_base64_and_still_lose_secrets() -> None:
    data = b"\x89PNG\x00\x01" + b"tok-123" + b"\xff\xfe"
    body = Redaction(secrets=["tok-123"]).body_from_bytes(
        data, len(data), "image/png", truncated=False
    )
    assert body["kind"] == "binary" and body["encoding"] == "base64"
    decoded = base64.b64decode(body["data"])
    assert b"tok-123" not in decoded and MASK.encode() in decoded
    assert "tok-123" not in body["text"]


def test_secret_cut_by_the_preview_end_is_masked() -> None:
    redaction = Redaction(secrets=["abcdef123456"])
    data = b'{"t": "abcdef'
    body = redaction.body_from_bytes(data, 40, "application/json", truncated=True)
    assert "abcdef" not in body["data"] and body["data"].endswith(MASK)
    assert body["truncated"] and body["size"] == 40 and body["captured"] == len(data)
    # Not truncated: a prefix alone is just text.
    assert redaction.body_bytes(b"abc", None, False) == b"abc"


def test_body_dict_shape() -> None:
    body = Redaction().body(preview(b'{"a": 1}'), "application/json")
    assert body == {
        "kind": "json",
        "text": '{\n  "a": 1\n}',
        "encoding": "utf-8",
        "data": '{"a": 1}',
        "content_type": "application/json",
        "size": 8,
        "captured": 8,
        "truncated": False,
    }


# --- whole records ------------------------------------------------------------------------------


def test_detail_is_json_able_and_complete() -> None:
    record = exchange(
        request_body=preview(b'{"password": "x"}'),
        response_body=preview(b"ok", limit=1),
        faults=["slow"],
        ttfb_ms=5.0,
        replay_of=3,
    )
    detail = Redaction(json_fields=["password"]).detail(record)
    json.dumps(detail)
    for key in ("id", "time", "service", "target", "method", "path", "status", "url", "ttfb_ms"):
        assert key in detail
    assert detail["faults"] == ["slow"] and detail["replay_of"] == 3
    assert detail["request_headers"] == [["Content-Type", "application/json"]]
    assert json.loads(detail["request_body"]["data"]) == {"password": MASK}
    assert detail["response_body"]["truncated"] is True
    assert detail["response_body"]["size"] == 2 and detail["response_body"]["data"] == "o"
    assert detail["redacted"] is True
    assert "request_body_size" not in detail


def test_tcp_detail() -> None:
    record = Exchange(1, "cache", "local", "tcp", "127.0.0.1:1", url="tcp://127.0.0.1:6379")
    record.request_body.add(b"*1\r\n$4\r\nPING\r\n")
    record.response_body.add(b"+PONG\r\n")
    detail = Redaction().detail(record)
    assert detail["request_headers"] == [] and detail["response_body"]["data"] == "+PONG\r\n"
    assert "method" not in detail


def test_disabled_masks_only_secrets() -> None:
    redaction = Redaction(secrets=["tok-123"], json_fields=["password"], enabled=False)
    record = exchange(
        path="/a?password=pw",
        request_headers=[("Authorization", "Bearer tok-123"), ("Cookie", "sid=1")],
        request_body=preview(b'{"password": "pw", "t": "tok-123"}'),
    )
    detail = redaction.detail(record)
    assert detail["redacted"] is False
    assert detail["path"] == "/a?password=pw"
    assert detail["request_headers"] == [["Authorization", f"Bearer {MASK}"], ["Cookie", "sid=1"]]
    assert json.loads(detail["request_body"]["data"]) == {"password": "pw", "t": MASK}


def test_from_names_uses_each_name_for_headers_and_fields() -> None:
    redaction = Redaction.from_names(["session"], secrets=["zz-top"])
    assert redaction.header("Session", "abc") == MASK
    assert redaction.body_bytes(b'{"session": 1}', "application/json", False) == (
        f'{{"session": "{MASK}"}}'.encode()
    )


def test_secret_variants_cover_wire_forms() -> None:
    variants = secret_variants("a b/ü")
    assert {"a b/ü", "a%20b%2F%C3%BC", "a%20b/%C3%BC", "a+b%2F%C3%BC", "a b/\\u00fc"} <= variants


@pytest.mark.parametrize(
    "shown",
    [
        "cannot connect to s3cr3t-t0ken.invalid:80",  # a host name: lowercased
        "S3CR3T-T0KEN",
        "s3cr3t%2dT0ken",  # a needlessly encoded character, lowercase hex
        "s3cr3t-T%30ken",
        "s3cr3t-%2554%30ken",  # encoded twice
        '{"v": "s3cr3t\\u002dT0ken"}',  # JSON-escaped
        "Basic " + base64.b64encode(b"admin:s3cr3t-T0ken").decode(),  # inside user:secret
        base64.b64encode(b"x" + b"s3cr3t-T0ken" + b"yz").decode(),  # any alignment
        base64.urlsafe_b64encode(b"ab" + b"s3cr3t-T0ken").decode(),
    ],
)
def test_secrets_are_masked_in_every_form(shown: str) -> None:
    redaction = Redaction(secrets=["s3cr3t-T0ken"], enabled=False)
    masked = redaction.text(shown)
    assert MASK in masked and "t0ken" not in masked.lower(), masked
    assert MASK.encode() in redaction.body_bytes(shown.encode(), "text/plain", False)


def test_a_secret_in_an_idna_host_name_is_masked() -> None:
    secret = "sëcrét-Ünï"
    host = f"api-{secret}.example".encode("idna").decode()
    assert host.startswith("xn--")
    assert Redaction(secrets=[secret]).text(f"cannot connect to {host}:80") == (
        f"cannot connect to {MASK}.example:80"
    )


def test_text_without_secrets_is_left_alone() -> None:
    redaction = Redaction(secrets=["s3cr3t-T0ken"], enabled=False)
    text = "GET /api?x=1 " + base64.b64encode(bytes(range(256)) * 8).decode()
    assert redaction.text(text) == text


# --- no secret survives into any output --------------------------------------------------------


def _leaks(text: str) -> list[str]:
    """Every forbidden string found in `text`, including in base64 payloads it holds."""
    forbidden = [*secret_variants(SECRET), PASSWORD, "Bearer-value-xyz", "cookie-value-xyz"]
    found = [f for f in forbidden if f in text]
    return found


def _base64_payloads(value: Any) -> list[bytes]:
    out: list[bytes] = []
    if isinstance(value, dict):
        if value.get("encoding") == "base64" or value.get("_encoding") == "base64":
            out.append(base64.b64decode(value.get("data") or value.get("text") or ""))
        for v in value.values():
            out += _base64_payloads(v)
    elif isinstance(value, list):
        for v in value:
            out += _base64_payloads(v)
    return out


def _leaky_records() -> list[Exchange]:
    url_forms = f"{quote(SECRET, safe='')}&b={quote_plus(SECRET)}&c={quote(SECRET)}"
    json_body = json.dumps(
        {"token": SECRET, "nested": {"password": PASSWORD}, "list": [SECRET]}
    ).encode()
    json_unicode = json.dumps({"note": f"see {SECRET}"}, ensure_ascii=False).encode()
    return [
        exchange(
            id=1,
            path=f"/charge?a={url_forms}&password={PASSWORD}",
            url=f"https://x.example.com/charge?a={url_forms}&password={PASSWORD}",
            request_headers=[
                ("Authorization", "Bearer Bearer-value-xyz"),
                ("Cookie", "sid=cookie-value-xyz"),
                ("X-Echo", f"prefix {SECRET} suffix"),
                ("Content-Type", "application/json"),
            ],
            response_headers=[
                ("Set-Cookie", "sid=cookie-value-xyz; Path=/"),
                ("Content-Type", "application/json"),
                (f"X-{SECRET}", "1"),
            ],
            request_body=preview(json_body),
            response_body=preview(json_unicode),
            error=f"upstream said {SECRET}",
        ),
        exchange(
            id=2,
            method="PUT",
            path="/upload",
            request_headers=[("Content-Type", "application/octet-stream")],
            request_body=preview(b"\x00\x01" + SECRET.encode() + b"\xff\x00"),
            response_headers=[("Content-Type", "application/x-www-form-urlencoded")],
            response_body=preview(f"a=1&password={PASSWORD}&t={quote_plus(SECRET)}".encode()),
        ),
        exchange(  # a secret cut in half by the preview limit, in text and in binary
            id=3,
            request_body=preview(b"token is " + SECRET.encode(), limit=9 + 8),
            response_headers=[("Content-Type", "text/plain")],
            response_body=preview(b"\xff\xfe" + SECRET.encode(), limit=2 + 6),
        ),
        exchange(  # truncated JSON, so parsing fails and patterns take over
            id=4,
            request_body=preview(
                json.dumps({"password": PASSWORD, "pad": "x" * 100}).encode(), limit=60
            ),
        ),
        Exchange(5, "cache", "local", "tcp", "127.0.0.1:1", url="tcp://127.0.0.1:6379"),
    ]


def test_no_secret_survives_into_any_output() -> None:
    records = _leaky_records()
    records[-1].request_body.add(b"AUTH " + SECRET.encode() + b"\r\n")
    redaction = Redaction.from_names(["password", "token"], secrets=[SECRET])
    details = [redaction.detail(r) for r in records]
    outputs = {
        "detail": json.dumps(details, ensure_ascii=False),
        "detail-ascii": json.dumps(details),
        "summary": json.dumps([redaction.summary(r) for r in records], ensure_ascii=False),
        "har": json.dumps(to_har(details, "0.1.0"), ensure_ascii=False),
        "curl-listener": "\n".join(to_curl(d, "http://127.0.0.1:9001") for d in details),
        "curl-upstream": "\n".join(to_curl(d, None) for d in details),
        "diff": "\n".join(str(x) for x in diff_details(details[0], details[1])),
    }
    for name, text in outputs.items():
        assert _leaks(text) == [], name
    payloads = _base64_payloads(details) + _base64_payloads(to_har(details, "0.1.0"))
    assert payloads, "the binary bodies should be exported as base64"
    for payload in payloads:
        assert SECRET.encode() not in payload and SECRET.encode()[:4] not in payload[-6:]
    # The half secrets at the preview ends are masked too.
    assert details[2]["request_body"]["data"] == f"token is {MASK}"
    assert base64.b64decode(details[2]["response_body"]["data"]) == b"\xff\xfe" + MASK.encode()


def test_no_secret_survives_with_redaction_disabled() -> None:
    redaction = Redaction(secrets=[SECRET], enabled=False)
    details = [redaction.detail(r) for r in _leaky_records()]
    text = json.dumps(details) + json.dumps(to_har(details, "0")) + to_curl(details[0], None)
    assert [v for v in secret_variants(SECRET) if v in text] == []
    assert PASSWORD in text  # named redaction is off: only secrets are masked
