"""malformed: answer with a broken HTTP response instead of calling the upstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devamb.faults.applies import Refusal
from devamb.faults.base import H2_PROTOCOLS, Fault
from devamb.profile.reader import Node
from devamb.proxy.response import Response

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("mode",)
MODES = {
    # a chunked response whose chunk size line is not hexadecimal
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n"
    b"\r\nzz\r\nbroken\r\n0\r\n\r\n",
    "garbage": b"\x16\x03\x01 this is not HTTP \x00\xff\r\n\r\n",
    "empty": b"",  # the connection closes without a byte
    # headers promise more body than ever comes
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n"
    b"only this much",
}


@dataclass(frozen=True)
class Params:
    mode: str = "bad-chunk"


def parse(node: Node, protocol: str) -> Params | None:
    if not node.has("mode"):
        return Params()
    mode = node.child("mode").one_of(MODES)
    return None if mode is None else Params(mode)


class MalformedFault(Fault):
    KIND = "malformed"
    ORDER = 25
    PROTOCOLS = ("http",)
    REFUSED = (
        Refusal("it breaks an HTTP response, and a tcp service has none to break (a "
                "cut stream is limit_data or reset)", protocol="tcp"),
        *(Refusal("it breaks an HTTP/1.1 response's framing, and an HTTP/2 call's frames are "
                  "kept valid by devamb's HTTP/2 layer (a broken call is reset, limit_data or "
                  "abort)", protocol=p) for p in H2_PROTOCOLS),
    )
    params: Params

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            data = MODES[self.params.mode]
            if data:
                transport.write(data)
            transport.close()
        exchange.error = f"fault malformed: sent a {self.params.mode} response"
        return Response(status=499)  # never sent: the connection is gone
