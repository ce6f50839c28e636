"""Typed reading of profile data that turns every mismatch into a positioned Problem."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devamb.profile.env import Interpolator
from devamb.profile.problems import Problem
from devamb.profile.source import Path_, Source
from devamb.profile.units import parse_duration, parse_size

_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "nothing",
}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Reader:
    """Collects problems while the validator walks the data."""

    def __init__(self, source: Source, interpolator: Interpolator) -> None:
        self.source = source
        self.interpolator = interpolator
        self.problems: list[Problem] = []

    def root(self) -> Node:
        return Node(self, (), self.source.data)

    def report(self, path: Path_, message: str, *, key: bool = False) -> None:
        line, col = self.source.position(path, key=key)
        dotted = ".".join(str(p) for p in path)
        self.problems.append(Problem(self.source.file, line, col, dotted, message))


class Node:
    """One value in the profile, with its path; readers return None after reporting a problem."""

    __slots__ = ("path", "reader", "value")

    def __init__(self, reader: Reader, path: Path_, value: Any) -> None:
        self.reader = reader
        self.path = path
        self.value = value

    @property
    def name(self) -> str:
        return str(self.path[-1]) if self.path else ""

    def problem(self, message: str, *, key: bool = False) -> None:
        self.reader.report(self.path, message, key=key)

    def child(self, key: str | int) -> Node:
        value = self.value.get(key) if isinstance(self.value, dict) else None
        return Node(self.reader, (*self.path, key), value)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> list[tuple[str, Node]]:
        if not isinstance(self.value, dict):
            return []
        return [(k, Node(self.reader, (*self.path, k), v)) for k, v in self.value.items()]

    def elements(self) -> list[Node]:
        if not isinstance(self.value, list):
            return []
        return [Node(self.reader, (*self.path, i), v) for i, v in enumerate(self.value)]

    # -- shape ------------------------------------------------------------------------------

    def mapping(
        self,
        known: Iterable[str],
        required: Iterable[str] = (),
        *,
        later: dict[str, str] | None = None,
    ) -> bool:
        """Check this is a mapping with only `known` keys; `later` names keys of future versions."""
        if not isinstance(self.value, dict):
            self.problem(f"expected a mapping, got {type_name(self.value)}")
            return False
        known = list(known)
        for key in self.value:
            if key in known:
                continue
            where = (*self.path, key)
            if later and key in later:
                self.reader.report(where, later[key], key=True)
                continue
            from difflib import get_close_matches  # a profile with a typo: not every engine

            hint = get_close_matches(key, known, n=1, cutoff=0.6)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            allowed = ", ".join(known)
            self.reader.report(
                where, f"unknown key {key!r}{suggestion}; expected one of {allowed}", key=True
            )
        ok = True
        for key in required:
            if key not in self.value:
                self.problem(f"missing required key {key!r}")
                ok = False
        return ok

    # -- scalars ----------------------------------------------------------------------------

    def string(self, *, interpolate: bool = True) -> str | None:
        if not isinstance(self.value, str):
            self.problem(f"expected a string, got {type_name(self.value)}")
            return None
        if not interpolate:
            return self.value
        text, missing = self.reader.interpolator.expand(self.value)
        for name in missing:
            self.problem(
                f"environment variable {name} is not set "
                f"(set it, add it to .env, or write ${{{name}:-default}})"
            )
        return None if missing else text

    def integer(self, *, low: int | None = None, high: int | None = None) -> int | None:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.problem(f"expected a whole number, got {type_name(self.value)}")
            return None
        if (low is not None and self.value < low) or (high is not None and self.value > high):
            if high is None:
                self.problem(f"must be at least {low}, got {self.value}")
            elif low is None:
                self.problem(f"must be at most {high}, got {self.value}")
            else:
                self.problem(f"{self.value} is out of range {low}..{high}")
            return None
        return self.value

    def number(self, *, low: float, high: float) -> float | None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            self.problem(f"expected a number, got {type_name(self.value)}")
            return None
        if not low <= self.value <= high:
            self.problem(f"{self.value} is out of range {low:g}..{high:g}")
            return None
        return float(self.value)

    def boolean(self) -> bool | None:
        if not isinstance(self.value, bool):
            self.problem(f"expected true or false, got {type_name(self.value)}")
            return None
        return self.value

    def duration(self) -> float | None:
        if not isinstance(self.value, str | int | float) or isinstance(self.value, bool):
            self.problem(f"expected a duration such as 250ms or 2s, got {type_name(self.value)}")
            return None
        try:
            return parse_duration(self.value)
        except ValueError as exc:
            self.problem(str(exc))
            return None

    def size(self) -> int | None:
        if not isinstance(self.value, str | int) or isinstance(self.value, bool):
            self.problem(f"expected a size such as 64KiB or 1MiB, got {type_name(self.value)}")
            return None
        try:
            return parse_size(self.value)
        except ValueError as exc:
            self.problem(str(exc))
            return None

    def one_of(self, choices: Iterable[str]) -> str | None:
        choices = list(choices)
        text = self.string(interpolate=False)
        if text is None:
            return None
        if text not in choices:
            known = ", ".join(choices) or "(there is none without problems)"
            self.problem(f"{text!r} is not one of {known}")
            return None
        return text

    def string_map(self) -> dict[str, str] | None:
        """A mapping of strings to strings (headers, env); values are interpolated."""
        if not isinstance(self.value, dict):
            self.problem(f"expected a mapping, got {type_name(self.value)}")
            return None
        out: dict[str, str] = {}
        for key, node in self.items():
            if isinstance(node.value, int | float) and not isinstance(node.value, bool):
                node.value = str(node.value)
            text = node.string()
            if text is not None:
                out[key] = text
        return out
