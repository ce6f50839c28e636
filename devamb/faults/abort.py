"""abort: answer with an HTTP status without calling the upstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from devamb.faults.applies import Refusal
from devamb.faults.base import Fault
from devamb.profile.reader import Node
from devamb.proxy.response import Response

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("status", "body", "headers")


@dataclass(frozen=True)
class Params:
    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def parse(node: Node, protocol: str) -> Params | None:
    status = node.child("status").integer(low=200, high=599) if node.has("status") else 503
    body = node.child("body").string() if node.has("body") else ""
    headers = node.child("headers").string_map() if node.has("headers") else {}
    if status is None or body is None or headers is None:
        return None
    return Params(status, body, headers)


class AbortFault(Fault):
    KIND = "abort"
    ORDER = 20
    PROTOCOLS = ("http",)
    REFUSED = (Refusal("it answers with an HTTP status, and a tcp service relays bytes "
                       "without HTTP to answer in", protocol="tcp"),)
    params: Params

    async def before_upstream(
        self, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        p = self.params
        body = p.body or f'{{"error": "injected", "fault": "abort", "status": {p.status}}}'
        headers = CIMultiDict({"x-devamb-fault": "abort"})
        headers.update(p.headers)
        if "Content-Type" not in headers:  # a Content-Type in `headers` wins over the default
            headers["Content-Type"] = (
                "text/plain; charset=utf-8" if p.body else "application/json"
            )
        response = Response(status=p.status, body=body.encode(), headers=headers)
        exchange.response_body.add(response.body)
        return response
