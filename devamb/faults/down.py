"""down: the service refuses connections, as if its dependency were gone."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.faults.base import Call, Fault
from devamb.profile.reader import Node

KEYS: tuple[str, ...] = ()
REFUSED_STREAM = 7  # the HTTP/2 error code (RFC 9113 7)


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

    async def before_call(self, call: Call) -> bool:
        """HTTP/2: the call is refused before any of it is processed (RST_STREAM
        REFUSED_STREAM), as a server that cannot take it: a gRPC client sees UNAVAILABLE."""
        call.reset(REFUSED_STREAM, "fault down: stream refused (REFUSED_STREAM)")
        return True
