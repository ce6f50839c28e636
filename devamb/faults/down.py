"""down: the service refuses connections, as if its dependency were gone."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.base import Fault
from devamb.profile.reader import Node

KEYS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Params:
    pass


def parse(node: Node, protocol: str) -> Params | None:
    return Params()


class DownFault(Fault):
    KIND = "down"
    ORDER = 0
    params: Params

    def refuses(self) -> bool:
        """TCP: reset at accept. HTTP: the request is read already, so it is reset at once."""
        return True
