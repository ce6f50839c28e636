"""Copy as curl: shell quoting, header selection, bodies; run for real against a local server."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devamb.inspect.curl import BODY_FILE, INLINE_BINARY_LIMIT, to_curl
from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.masking import MASK
from devamb.inspect.redaction import Redaction

LISTENER = "http://127.0.0.1:9001"


def _detail(body: bytes = b"", limit: int = 64 * 1024, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        id=1,
        service="payments",
        target="staging",
        protocol="http",
        client="127.0.0.1:1",
        method="POST",
        path="/charge?a=1&b=it's",
        url="https://pay.example.com/v1/charge?a=1&b=it's",
        request_headers=[
            ("Content-Type", "application/json"),
            ("X-Quote", 'it\'s "quoted" $HOME `x`'),
            ("Content-Length", str(len(body))),
            ("Host", "pay.example.com"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("Via", "1.1 devamb"),
        ],
    )
    base.update(fields)
    preview = BodyPreview(limit)
    preview.add(body)
    return Redaction().detail(Exchange(request_body=preview, **base))


def _words(command: str) -> list[str]:
    """The shell words of the curl part of a command (comments and a printf pipe dropped)."""
    lines = [line for line in command.splitlines() if not line.startswith("#")]
    text = "\n".join(lines).replace(" \\\n  ", " ")  # the command's line continuations
    if " | curl " in text:
        text = "curl " + text.split(" | curl ", 1)[1]
    return shlex.split(text)


def test_text_body_through_the_listener() -> None:
    body = b'{"note": "it\'s $5 & `done`\\n", "emoji": "\xf0\x9f\x99\x82"}'
    command = to_curl(_detail(body), LISTENER)
    assert not command.startswith("#")
    assert _words(command) == [
        "curl",
        "-X",
        "POST",
        "http://127.0.0.1:9001/charge?a=1&b=it's",
        "-H",
        "Content-Type: application/json",
        "-H",
        'X-Quote: it\'s "quoted" $HOME `x`',
        "--data-binary",
        body.decode(),
    ]
    assert (
        command.splitlines()[0] == "curl -X POST 'http://127.0.0.1:9001/charge?a=1&b=it'\"'\"'s' \\"
    )


def test_upstream_url_keeps_proxy_headers_but_not_framing() -> None:
    words = _words(to_curl(_detail(b"x"), None))
    assert words[3] == "https://pay.example.com/v1/charge?a=1&b=it's"
    assert "Host: pay.example.com" in words and "Via: 1.1 devamb" in words
    assert not any(w.startswith("Content-Length") for w in words)


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("GET", b"", ["curl", f"{LISTENER}/p"]),
        ("get", b"", ["curl", f"{LISTENER}/p"]),
        ("HEAD", b"", ["curl", "--head", f"{LISTENER}/p"]),
        ("DELETE", b"", ["curl", "-X", "DELETE", f"{LISTENER}/p"]),
        ("GET", b"q", ["curl", "-X", "GET", f"{LISTENER}/p", "--data-binary", "q"]),
        (
            "POST",
            b"@/etc/passwd",
            ["curl", "-X", "POST", f"{LISTENER}/p", "--data-raw", "@/etc/passwd"],
        ),
    ],
)
def test_methods_and_bodies(method: str, body: bytes, expected: list[str]) -> None:
    detail = _detail(body, method=method, path="/p", request_headers=[])
    assert _words(to_curl(detail, LISTENER + "/")) == expected


def test_header_forms() -> None:
    detail = _detail(
        request_headers=[
            ("Accept-Encoding", "gzip, br"),
            ("X-Empty", ""),
            ("Authorization", "Bearer secret-value"),
            ("Transfer-Encoding", "chunked"),
        ]
    )
    command = to_curl(detail, LISTENER)
    words = _words(command)
    assert "--compressed" in words and not any("Accept-Encoding" in w for w in words)
    assert "X-Empty;" in words
    assert f"Authorization: Bearer {MASK}" in words and "secret-value" not in command
    assert command.startswith(f"# values shown as {MASK} were redacted")
    assert not any("Transfer-Encoding" in w for w in words)


def test_truncated_body_is_noted() -> None:
    command = to_curl(_detail(b"0123456789", limit=4, request_headers=[]), LISTENER)
    assert command.splitlines()[0] == (
        "# the request body was truncated: 4 of 10 bytes were recorded and are sent"
    )
    assert _words(command)[-2:] == ["--data-binary", "0123"]


def test_binary_body_is_piped_through_printf() -> None:
    data = bytes(range(256)) + b"\\'%\n"
    command = to_curl(_detail(data, request_headers=[]), LISTENER)
    assert command.startswith(f"# binary request body ({len(data)} bytes) piped in through printf")
    assert _words(command)[-2:] == ["--data-binary", "@-"]
    printf = "\n".join(line for line in command.splitlines() if not line.startswith("#"))
    printf = printf.split(" | curl ", 1)[0]
    for shell in ("sh", "bash"):
        if shutil.which(shell):
            out = subprocess.run([shell, "-c", printf], capture_output=True, check=True).stdout
            assert out == data, shell


def test_large_binary_body_is_read_from_a_file() -> None:
    data = b"\x00" * (INLINE_BINARY_LIMIT + 1)
    command = to_curl(_detail(data, request_headers=[]), LISTENER)
    assert f"save it as {BODY_FILE}" in command.splitlines()[0]
    assert _words(command)[-2:] == ["--data-binary", f"@{BODY_FILE}"]


# --- the command runs ---------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize(
    "body",
    [
        b'{"note": "it\'s $5 & `done`\\n", "emoji": "\xf0\x9f\x99\x82"}',
        bytes(range(256)) + b"\\'%",
    ],
    ids=["text", "binary"],
)
def test_the_command_sends_the_same_request(server: str, body: bytes) -> None:
    command = to_curl(_detail(body, method="PUT"), server)
    subprocess.run(["sh", "-c", command], check=True, capture_output=True, timeout=20)
    [(method, path, headers, sent)] = _Recorder.seen
    assert (method, path, sent) == ("PUT", "/charge?a=1&b=it's", body)
    assert headers["X-Quote"] == 'it\'s "quoted" $HOME `x`'
    assert headers["Content-Type"] == "application/json"
