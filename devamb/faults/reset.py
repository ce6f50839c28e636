"""reset: close the client's connection with a TCP reset, at once or after N response bytes.

On an HTTP/2 call (http2 and grpc services) the call's stream is reset (RST_STREAM with
`code`, INTERNAL_ERROR by default: a gRPC client reports INTERNAL, a failure of the server, not
a CANCELLED it could take for its own doing), or with `scope: connection` the client's whole
connection ends (GOAWAY with `code`, then the close: every call on it fails, UNAVAILABLE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import h2.errors

from devamb.faults.applies import answering_h2_refusals
from devamb.faults.base import (
    DOWNSTREAM,
    H2_PROTOCOLS,
    UPSTREAM,
    Call,
    CutAfter,
    Fault,
    Shaper,
)
from devamb.profile.reader import Node
from devamb.proxy.connection import reset
from devamb.proxy.response import Response
from devamb.wire.follower import Action, Close

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("after_bytes", "code", "scope")
SCOPES = ("stream", "connection")
H2_CODES = {code.name: int(code) for code in h2.errors.ErrorCodes}
DEFAULT_CODE = H2_CODES["INTERNAL_ERROR"]


@dataclass(frozen=True)
class Params:
    after_bytes: int | None = None  # None: before the upstream is called
    code: int = DEFAULT_CODE  # HTTP/2: the RST_STREAM (or GOAWAY) error code
    scope: str = "stream"  # HTTP/2: "stream" (RST_STREAM) | "connection" (GOAWAY)
    H2_KEYS: ClassVar[tuple[str, ...]] = ("code", "scope")


def parse(node: Node, protocol: str) -> Params | None:
    for key in ("code", "scope"):
        if node.has(key) and protocol not in H2_PROTOCOLS:
            node.child(key).problem(f"{key!r} is for http2 and grpc services (an HTTP/2 "
                                    f"error code or scope); here reset is a TCP reset",
                                    key=True)
            return None
    code = _code(node.child("code")) if node.has("code") else DEFAULT_CODE
    scope = node.child("scope").one_of(SCOPES) if node.has("scope") else "stream"
    size = node.child("after_bytes").size() if node.has("after_bytes") else None
    if code is None or scope is None or (node.has("after_bytes") and size is None):
        return None
    return Params(size, code, scope)


def _code(node: Node) -> int | None:
    """An HTTP/2 error code by name (CANCEL, any case) or number (0..13)."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 13:
        return value
    if isinstance(value, str) and value.upper() in H2_CODES:
        return H2_CODES[value.upper()]
    node.problem(f"{value!r} is not an HTTP/2 error code; use one of {', '.join(H2_CODES)} "
                 f"or 0..13")
    return None


class ResetFault(Fault):
    KIND = "reset"
    ORDER = 10
    DIRECTIONS = (DOWNSTREAM, UPSTREAM, "both")
    FRAMES = True
    SHAPES = ("http", "tcp", *H2_PROTOCOLS)
    REFUSED = answering_h2_refusals(lambda p: p.after_bytes is not None)
    params: Params

    def refuses(self) -> bool:
        return self.params.after_bytes is None and self.protocol == "tcp"

    def on_command(self, name: str) -> Action | None:
        return Close(reset=True, reason=f"fault {name}: connection reset at this command")

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        if self.params.after_bytes is not None:
            return None
        reset(request.transport)
        exchange.error = "fault reset: connection reset before the upstream"
        return Response(status=499)  # never sent: the connection is gone

    async def before_call(self, call: Call) -> bool:
        p = self.params
        if p.after_bytes is not None:
            return False
        name = h2.errors.ErrorCodes(p.code).name if p.code in H2_CODES.values() else p.code
        if p.scope == "connection":
            call.goaway(p.code, f"fault reset: GOAWAY ({name}) before the upstream")
        else:
            call.reset(p.code, f"fault reset: RST_STREAM ({name}) before the upstream")
        return True

    def shapes(self, direction: str) -> bool:
        return self.params.after_bytes is not None and super().shapes(direction)

    def shaper(self, direction: str) -> Shaper:
        limit = self.params.after_bytes or 0
        return CutAfter(limit, f"fault reset after {limit} bytes", reset=True,
                        code=self.params.code, connection=self.params.scope == "connection")
