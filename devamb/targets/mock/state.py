"""What a mock remembers between requests: how often each route answered, and what did not match.

`times: N` makes a route stop matching after N answers; a `sequence:` answers with its responds in
turn, then keeps the last (`repeat: last`) or starts again (`repeat: cycle`). Pick and count happen
in one step without awaiting, so concurrent requests each get their own turn.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devamb.targets.mock.routes import Respond, Route

UNMATCHED_KEPT = 20  # recent unmatched requests shown in status and the TUI


@dataclass(frozen=True)
class Unmatched:
    time: float
    method: str
    path: str  # without the query string: it may carry tokens
    closest: str | None  # "routes[2] GET /users/{id}: method GET is not POST"

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "method": self.method, "path": self.path,
                "closest": self.closest}


def respond_for(route: Route, turn: int) -> Respond:
    """The respond a route gives on its `turn`-th answer (0-based)."""
    responds = route.responds
    if turn < len(responds):
        return responds[turn]
    if route.repeat == "cycle":
        return responds[turn % len(responds)]
    return responds[-1]


class MockState:
    """Hit counts per route, and the unmatched requests (a count and the most recent few)."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self.hits = [0] * len(routes)
        self.unmatched_count = 0
        self.unmatched: deque[Unmatched] = deque(maxlen=UNMATCHED_KEPT)

    def available(self, route: Route) -> bool:
        return route.times is None or self.hits[route.index] < route.times

    def take(self, route: Route) -> Respond:
        """Count one answer of `route` and return the respond for it."""
        turn = self.hits[route.index]
        self.hits[route.index] = turn + 1
        return respond_for(route, turn)

    def miss(self, method: str, path: str, closest: str | None) -> None:
        self.unmatched_count += 1
        self.unmatched.append(Unmatched(time.time(), method, path, closest))

    def reset(self) -> None:
        self.hits = [0] * len(self.routes)
        self.unmatched_count = 0
        self.unmatched.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": [
                {
                    "index": r.index,
                    "name": r.name,
                    "hits": self.hits[r.index],
                    **({"left": max(r.times - self.hits[r.index], 0)} if r.times else {}),
                }
                for r in self.routes
            ],
            "matched": sum(self.hits),
            "unmatched_count": self.unmatched_count,
            "unmatched": [u.to_json() for u in self.unmatched],
        }
