"""Durations (`250ms`, `2s`, `1m`) and sizes (`64KiB`, `1MiB`, `512`)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def parse_duration(text: str | int | float) -> float:
    """Seconds from a duration; a bare number is seconds. Raises ValueError with a hint."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 250ms, 2s or 1m")
    if isinstance(text, int | float):
        if not math.isfinite(text):  # YAML's .nan and .inf, `--grace nan`
            raise ValueError(f"{text!r} is not a duration (use e.g. 250ms, 2s, 1m)")
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 250ms, 2s, 1m)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(text: str | int) -> int:
    """Bytes from a size; a bare number is bytes. Raises ValueError with a hint."""
    if isinstance(text, bool):
        raise ValueError("expected a size such as 64KiB or 1MiB")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size (use e.g. 512, 64KiB, 1MiB)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    return f"{seconds / 60:g}m"


def format_size(count: int) -> str:
    """A byte count the way a profile writes it: `512`, `64KiB`, `1MiB`, `1536` (not whole KiB)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= factor and count % factor == 0:
            return f"{count // factor}{unit}"
    return str(count)


# fault settings that are durations or sizes, written back as a profile writes them
DURATION_SETTINGS = ("delay", "jitter", "timeout", "for")
SIZE_SETTINGS = ("rate", "bytes", "after_bytes", "size")


def format_setting(key: str, value: object) -> str:
    """A fault setting as typed (`delay=200ms`, `rate=256KiB/s`), not as stored (0.2, 262144)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key in DURATION_SETTINGS:
            return format_duration(value)
        if key in SIZE_SETTINGS and float(value).is_integer():
            return format_size(int(value)) + ("/s" if key == "rate" else "")
    return str(value)
