"""Endpoints of a target and the simple round-robin choice among them.

Kept apart from Docker on purpose: a later pool/health issue generalises this piece.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """One concrete upstream address; `origin` says where it came from (e.g. a container id)."""

    host: str
    port: int
    origin: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class RoundRobin:
    """An immutable-per-update list of endpoints, handed out in turn."""

    def __init__(self) -> None:
        self._items: tuple[Endpoint, ...] = ()
        self._next = 0

    @property
    def items(self) -> tuple[Endpoint, ...]:
        return self._items

    def replace(self, items: Iterable[Endpoint]) -> bool:
        """Swap the whole list; True when it changed."""
        new = tuple(items)
        if new == self._items:
            return False
        self._items = new
        self._next = 0
        return True

    def pick(self) -> Endpoint | None:
        items = self._items
        if not items:
            return None
        endpoint = items[self._next % len(items)]
        self._next = (self._next + 1) % len(items)
        return endpoint
