"""The mapping report: each profile feature that does not map exactly, at FILE:LINE:COL."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.profile.source import Path_, Source


@dataclass(frozen=True, order=True)
class Note:
    file: str
    line: int
    col: int
    path: str  # dotted, e.g. services.payments.retries.budget
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class Report:
    """Notes collected while mapping; `lines()` gives them sorted and without repeats."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._notes: set[Note] = set()

    def note(self, path: Path_, message: str, *, key: bool = True,
             source: Source | None = None) -> None:
        """A line at `path` of the profile, or of `source` (a mock file the profile names)."""
        source = source or self.source
        line, col = source.position(path, key=key)
        dotted = ".".join(str(p) for p in path)
        self._notes.add(Note(source.file, line, col, dotted, message))

    @property
    def notes(self) -> list[Note]:
        return sorted(self._notes)

    def lines(self) -> list[str]:
        return [str(n) for n in self.notes]

    def text(self) -> str:
        """The report as printed by `devamb export --check` and beside every export."""
        notes = self.notes
        if not notes:
            return "everything in the profile maps to Envoy exactly\n"
        head = f"{len(notes)} profile feature(s) do not map to Envoy exactly:\n"
        return head + "".join(f"{n}\n" for n in notes)
