"""Masks values that came from `${VAR}` wherever the engine writes text: logs, status, records.

A secret is masked in every form it takes on the way through a proxy, not only as written:
- any letter case (host names are lowercased; percent-encoding hex digits come in both cases);
- each character raw, percent-encoded (once or twice: `%2F`, `%252F`), `+` for a space, or
  JSON-escaped (`\\u00fc`, `\\/`), in any mix;
- base64 (standard and URL-safe) at any alignment, so a secret inside `user:secret` in a
  `Basic` credential is found too: the whole base64 run around it is masked;
- an IDNA (punycode) label of a host name whose decoded text contains the secret.
"""

from __future__ import annotations

import base64
import logging
import re
import weakref
from collections.abc import Iterable
from typing import Any

MASK = "••••"
_MASK_BYTES = MASK.encode()
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t"}
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_PUNYCODE = re.compile(rb"(?i)xn--[a-z0-9-]+")


def char_forms(char: str) -> set[str]:
    """Every way one character of a secret may be written in a URL, a form or a JSON string."""
    raw = char.encode("utf-8")
    forms = {char, char.lower(), char.upper()}
    forms.add("".join(f"%{b:02X}" for b in raw))
    forms.add("".join(f"%25{b:02X}" for b in raw))
    if char in _JSON_SHORT:
        forms.add(_JSON_SHORT[char])
    code = ord(char)
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.add(f"\\u{high:04x}\\u{low:04x}")
    else:
        forms.add(f"\\u{code:04x}")
    if char == " ":
        forms.add("+")
    return {f for f in forms if f}


def base64_cores(secret: str) -> set[bytes]:
    """The base64 characters that only the secret's bytes determine, at each of the three
    alignments it can have inside a longer value, in the standard and URL-safe alphabets."""
    raw = secret.encode("utf-8")
    cores: set[bytes] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start, end = (8 * offset + 5) // 6, (8 * (offset + len(raw))) // 6
        core = encoded[start:end]
        if core:
            cores.add(core)
            cores.add(core.translate(bytes.maketrans(b"+/", b"-_")))
    return cores


def _fold(text: str) -> str:
    """Only for secrets that are not ASCII (`Redactor._folded`): unicodedata's library is
    imported by the engines that have one (~0.1 MiB of resident pages, issue 22)."""
    import unicodedata

    return unicodedata.normalize("NFKC", text).casefold()


class Redactor:
    """Masks every form of the given secrets in text (`__call__`) and in bytes (`mask_bytes`)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        self._base64: re.Pattern[bytes] | None = None
        self._folded = tuple(_fold(s) for s in self.secrets if not s.isascii())
        if not self.secrets:
            return
        per_char = [[sorted(char_forms(c), key=len, reverse=True) for c in s] for s in self.secrets]
        self._text = re.compile(
            "|".join("".join(_group(map(re.escape, forms)) for forms in s) for s in per_char),
            re.IGNORECASE,
        )
        self._bytes = re.compile(
            b"|".join(
                b"".join(_group_bytes(re.escape(f.encode()) for f in forms) for forms in s)
                for s in per_char
            ),
            re.IGNORECASE,
        )
        cores = sorted(set().union(*(base64_cores(s) for s in self.secrets)), key=len, reverse=True)
        self._base64 = re.compile(b"|".join(map(re.escape, cores)))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __call__(self, text: str) -> str:
        if self._text is None or not text:
            return text
        if text.isascii():
            return self.mask_bytes(text.encode("ascii")).decode("utf-8")
        text = _mask_base64(text.encode("utf-8"), self._base64).decode("utf-8", "replace")
        text = self._text.sub(MASK, text)
        if self._folded:
            text = self._mask_punycode(text.encode("utf-8")).decode("utf-8", "replace")
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        if self._bytes is None or not data:
            return data
        data = _mask_base64(data, self._base64)
        data = self._bytes.sub(_MASK_BYTES, data)
        if self._folded:
            data = self._mask_punycode(data)
        return data

    def walk(self, value: Any) -> Any:
        """Every string (keys too) of a JSON-able structure masked; other values kept."""
        if not self:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.walk(v) for v in value]
        return value

    def _mask_punycode(self, data: bytes) -> bytes:
        def replace(match: re.Match[bytes]) -> bytes:
            try:
                decoded = match[0][4:].lower().decode("ascii").encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                return match[0]
            folded = _fold(decoded)
            return _MASK_BYTES if any(s in folded for s in self._folded) else match[0]

        return _PUNYCODE.sub(replace, data)


def _group(forms: Iterable[str]) -> str:
    return "(?:" + "|".join(forms) + ")"


def _group_bytes(forms: Iterable[bytes]) -> bytes:
    return b"(?:" + b"|".join(forms) + b")"


def _mask_base64(data: bytes, pattern: re.Pattern[bytes] | None) -> bytes:
    """Each base64 run that holds a secret's core, masked whole (with its `=` padding)."""
    if pattern is None:
        return data
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(data):
        start, end = match.span()
        if spans and start < spans[-1][1]:
            continue
        while start > 0 and data[start - 1] in _B64_CHARS:
            start -= 1
        while end < len(data) and data[end] in _B64_CHARS:
            end += 1
        while end < len(data) and data[end] == ord("="):
            end += 1
        spans.append((start, end))
    if not spans:
        return data
    out, last = bytearray(), 0
    for start, end in spans:
        out += data[last:start] + _MASK_BYTES
        last = end
    return bytes(out + data[last:])


class RedactingFilter(logging.Filter):
    """Applied to a handler: every record is formatted, then masked, before it is written.
    `update` adds the secrets of a reloaded profile (those of the old one stay masked)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        _FILTERS.add(self)

    def update(self, secrets: Iterable[str]) -> None:
        merged = {*self.redactor.secrets, *secrets}
        if merged != set(self.redactor.secrets):
            self.redactor = Redactor(merged)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


_FILTERS: weakref.WeakSet[RedactingFilter] = weakref.WeakSet()


def update_log_secrets(secrets: Iterable[str]) -> None:
    """A reloaded profile may bring new secrets: every installed log filter masks them too."""
    secrets = tuple(secrets)
    for log_filter in _FILTERS:
        log_filter.update(secrets)
