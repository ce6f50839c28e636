"""abort: answer with an HTTP status without calling the upstream."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from devamb.faults.base import Fault
from devamb.profile.reader import Node

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
    params: Params

    async def before_upstream(self, request, exchange):  # type: ignore[no-untyped-def]
        body = self.params.body or f'{{"error": "injected", "fault": "abort", "status": ' \
                                   f'{self.params.status}}}'
        response = web.Response(
            status=self.params.status, text=body,
            content_type="application/json" if not self.params.body else "text/plain",
            headers={"x-devamb-fault": "abort", **self.params.headers},
        )
        exchange.response_body.add(response.body)  # type: ignore[arg-type]
        return response


FAULT = AbortFault
