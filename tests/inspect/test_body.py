"""Body rendering: JSON, form data, text and bounded hex dumps."""

from __future__ import annotations

import json

import pytest

from devamb.inspect.body import decode_text, hex_dump, is_textual, media_type, render_body


@pytest.mark.parametrize(
    ("data", "content_type", "truncated", "kind", "text"),
    [
        (
            b'{"a":[1,{"b":null}]}',
            "application/json",
            False,
            "json",
            '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}',
        ),
        (b'{"a": 1}', "application/problem+json; charset=utf-8", False, "json", '{\n  "a": 1\n}'),
        (b"  [1, 2]", None, False, "json", "[\n  1,\n  2\n]"),  # sniffed
        (b'{"name": "\xc3\xa9"}', "application/json", False, "json", '{\n  "name": "é"\n}'),
        (b'{"a": [1, 2', "application/json", True, "text", '{"a": [1, 2'),  # truncated
        (b'{"a": }', "application/json", False, "text", '{"a": }'),  # malformed
        (b"{not json", "text/html", False, "text", "{not json"),
        (
            b"a=1&b=hello+world&c=%C3%A9&d=",
            "application/x-www-form-urlencoded",
            False,
            "form",
            "a = 1\nb = hello world\nc = é\nd = ",
        ),
        (b"hello\nworld", "text/plain", False, "text", "hello\nworld"),
        (b"hello", None, False, "text", "hello"),
        (b"", "application/json", False, "text", ""),
        ("h\u00e9llo".encode()[:2], "text/plain", True, "text", "h"),  # cut inside a character
    ],
)
def test_renders(
    data: bytes, content_type: str | None, truncated: bool, kind: str, text: str
) -> None:
    rendered = render_body(data, content_type, truncated)
    assert (rendered.kind, rendered.text) == (kind, text)


def test_pretty_json_is_two_space_and_keeps_order() -> None:
    data = json.dumps({"z": 1, "a": {"k": [True]}}).encode()
    assert render_body(data, "application/json", False).text == json.dumps(
        {"z": 1, "a": {"k": [True]}}, indent=2
    )


def test_binary_is_a_hex_dump_like_xxd() -> None:
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01"
    rendered = render_body(data, None, False)
    assert rendered.kind == "binary"
    assert rendered.text == (
        "00000000: 8950 4e47 0d0a 1a0a 0000 000d 4948 4452  .PNG........IHDR\n"
        "00000010: 0001                                     .."
    )


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"GIF89a....", "image/gif"),  # the media type says binary even if it decodes
        (b"\xff\xd8\xff\xe0", None),  # invalid UTF-8
        (b"abc\x00def", "text/plain"),  # NUL bytes
        (bytes(range(1, 32)) * 4, None),  # mostly control characters
        (b"plain", "application/octet-stream"),
    ],
)
def test_binary_detection(data: bytes, content_type: str | None) -> None:
    assert render_body(data, content_type, False).kind == "binary"
    assert not is_textual(content_type, data)


def test_hex_dump_is_bounded() -> None:
    data = bytes(range(256)) * 100
    text = hex_dump(data, max_lines=4)
    lines = text.splitlines()
    assert len(lines) == 5
    assert lines[-1] == f"… {len(data) - 64} more bytes"
    assert (
        render_body(data, "application/octet-stream", False, max_hex_lines=2).text.count("\n") == 2
    )


def test_helpers() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""
    assert decode_text(b"\xef\xbb\xbfhi") == "hi"  # a BOM is dropped
    assert decode_text("é".encode()[:1], truncated=False) is None
    assert decode_text("é".encode()[:1], truncated=True) == ""
    assert is_textual("text/plain", b"tab\tand\r\nlines\x1b[0m")
