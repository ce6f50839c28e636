"""Copy as curl: one recorded (redacted) request as a shell command, quoted with shlex."""

from __future__ import annotations

import base64
import shlex
from typing import Any

from devamb.inspect.masking import MASK

# Framing and proxy headers: curl and devamb set these themselves.
_SKIP = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Added by devamb on the way upstream; dropped when the command goes through the listener again.
_ADDED_BY_PROXY = frozenset(
    {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via"}
)
INLINE_BINARY_LIMIT = 16 * 1024  # larger binary bodies are read from a file instead
BODY_FILE = "body.bin"


def to_curl(detail: dict[str, Any], base_url: str | None) -> str:
    """A copy-pasteable curl command for a redacted exchange detail.

    With `base_url` (the service's listener, e.g. `http://127.0.0.1:9001`) the command goes through
    devamb again, without the headers devamb adds; with None it goes to the recorded upstream URL.
    Text bodies are inlined (`--data-binary`); binary ones are piped through `printf`, or read from
    `body.bin` above 16 KiB. `#` lines before the command note truncated bodies and masked values.
    """
    method = (detail.get("method") or "GET").upper()
    if base_url is not None:
        url = base_url.rstrip("/") + (detail.get("path") or "/")
        skip = _SKIP | _ADDED_BY_PROXY
    else:
        url = detail.get("url") or detail.get("path") or "/"
        skip = _SKIP
    body = detail.get("request_body") or {}
    data, binary = _body(body)
    has_body = bool(body.get("size")) or bool(data)

    notes: list[str] = []
    args = ["curl"]
    pipe: str | None = None
    if method == "HEAD" and not has_body:
        args.append("--head")
    elif method != "GET" or has_body:
        args += ["-X", method]
    if detail.get("protocol") in ("http2", "grpc"):
        args.append("--http2-prior-knowledge")  # an h2c listener or upstream
    args.append(url)
    for name, value in detail.get("request_headers") or ():
        lower = name.lower()
        if lower in skip or lower.startswith(":"):  # HTTP/2 pseudo-headers: curl sets them
            continue
        if lower == "accept-encoding" and any(
            coding in value for coding in ("gzip", "deflate", "br", "zstd")
        ):
            args.append("--compressed")
            continue
        args += ["-H", f"{name}: {value}" if value else f"{name};"]
    if has_body:
        if body.get("truncated"):
            notes.append(
                f"the request body was truncated: {body.get('captured', len(data))} of "
                f"{body.get('size')} bytes were recorded and are sent"
            )
        if not binary:
            text = data.decode()
            args += ["--data-raw" if text.startswith("@") else "--data-binary", text]
        elif len(data) <= INLINE_BINARY_LIMIT:
            pipe = f"printf '%b' {shlex.quote(_printf_escape(data))}"
            args += ["--data-binary", "@-"]
            notes.append(f"binary request body ({len(data)} bytes) piped in through printf")
        else:
            args += ["--data-binary", f"@{BODY_FILE}"]
            notes.append(
                f"binary request body ({len(data)} bytes) not inlined: save it as {BODY_FILE}"
            )
    command = " \\\n  ".join(_join_pairs(args))
    if pipe:
        command = f"{pipe} | {command}"
    if MASK in command:
        notes.append(f"values shown as {MASK} were redacted: fill them in before running")
    return "".join(f"# {note}\n" for note in notes) + command


def _body(body: dict[str, Any]) -> tuple[bytes, bool]:
    """The recorded request body bytes and whether they are binary."""
    data = body.get("data") or ""
    if body.get("encoding") == "base64":
        return base64.b64decode(data), True
    return data.encode(), False


def _join_pairs(args: list[str]) -> list[str]:
    """Shell words, one option with its value per line."""
    lines = [shlex.quote(args[0])]
    i = 1
    while i < len(args):
        word = args[i]
        if word in ("-X", "-H", "--data-binary", "--data-raw") and i + 1 < len(args):
            lines.append(f"{word} {shlex.quote(args[i + 1])}")
            i += 2
        else:
            lines.append(shlex.quote(word))
            i += 1
    first = f"{lines[0]} {lines[1]}" if len(lines) > 1 else lines[0]
    rest = lines[2:]
    if len(lines) > 2 and lines[1].startswith(("-X", "--head")):
        first, rest = f"{first} {lines[2]}", lines[3:]
    return [first, *rest]


def _printf_escape(data: bytes) -> str:
    """`data` as a printf `%b` argument: printable ASCII as is, everything else `\\0ooo`."""
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\0{byte:03o}")
    return "".join(out)
