"""Renders a recorded body preview for people: pretty JSON, form fields, text, or a hex dump."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

BodyKind = Literal["json", "form", "text", "binary"]

HEX_LINE_BYTES = 16
MAX_HEX_LINES = 256  # 4 KiB of a binary body; the rest is summarised in one line

_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream")
_FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """A body as shown: `kind` says how `text` was produced."""

    kind: BodyKind
    text: str


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json` (lower case, '' when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_text(data: bytes, truncated: bool = False) -> str | None:
    """The body as UTF-8 text, or None when it is not text (invalid UTF-8, NULs, control bytes).

    A truncated preview may end inside a multi-byte character; that tail is dropped.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data, final=not truncated)
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b")
    if "\x00" in text[:4096] or controls * 20 > min(len(text), 4096):
        return None
    return text


def is_textual(content_type: str | None, data: bytes, truncated: bool = False) -> bool:
    """Whether the body reads as text: by its media type when it says so, else by sniffing."""
    kind = media_type(content_type)
    if kind.startswith(_BINARY_TYPES):
        return False
    return decode_text(data, truncated) is not None


def render_body(
    data: bytes, content_type: str | None, truncated: bool, *, max_hex_lines: int = MAX_HEX_LINES
) -> RenderedBody:
    """Render a body preview: JSON pretty-printed (2 spaces), form data as `key = value` lines,
    text as is, anything else as an `xxd`-style hex dump of at most `max_hex_lines` lines.

    A truncated or malformed JSON body falls back to text.
    """
    kind = media_type(content_type)
    if not data:
        return RenderedBody("text", "")
    if kind.startswith(_BINARY_TYPES):
        return RenderedBody("binary", hex_dump(data, max_hex_lines))
    text = decode_text(data, truncated)
    if text is None:
        return RenderedBody("binary", hex_dump(data, max_hex_lines))
    if _looks_json(kind, text):
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            return RenderedBody("json", json.dumps(value, indent=2, ensure_ascii=False))
    if kind == _FORM_TYPE:
        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if pairs:
            return RenderedBody("form", "\n".join(f"{k} = {v}" for k, v in pairs))
    return RenderedBody("text", text)


def _looks_json(kind: str, text: str) -> bool:
    if kind == "application/json" or kind.endswith("+json"):
        return True
    if kind and not kind.startswith("text/plain"):
        return False
    start = text.lstrip()[:1]
    return start in ("{", "[")


def hex_dump(data: bytes, max_lines: int = MAX_HEX_LINES) -> str:
    """`xxd`-style lines: offset, 16 bytes in groups of two, then the printable ASCII."""
    lines = []
    shown = min(len(data), max_lines * HEX_LINE_BYTES)
    for offset in range(0, shown, HEX_LINE_BYTES):
        chunk = data[offset : offset + HEX_LINE_BYTES]
        hexed = chunk.hex()
        groups = " ".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}: {groups:<39}  {printable}")
    if shown < len(data):
        lines.append(f"… {len(data) - shown} more bytes")
    return "\n".join(lines)
