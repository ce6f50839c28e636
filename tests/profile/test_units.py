from __future__ import annotations

import pytest

from devamb.profile.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1.5s", 1.5), (3, 3.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("64KiB", 65536), ("1MiB", 1048576), ("512", 512), (10, 10), ("2KB", 2000)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["fast", "-1s", "10 parsecs", True, float("nan"), float("inf"), -0.5]
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]
