"""Profile problems: every one names the file, line, column and dotted path it is about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    path: str  # dotted, e.g. "services.payments.target"; "" for syntax errors
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ProfileError(Exception):
    """A profile that cannot be used; carries every problem found, in file order."""

    def __init__(self, problems: list[Problem], secrets: Iterable[str] = ()) -> None:
        self.problems = sorted(problems)
        self.secrets = frozenset(secrets)  # the ${VAR} values read so far: a problem may quote one
        super().__init__("\n".join(str(p) for p in self.problems))
