"""abort: answer with an HTTP status (or, on a gRPC call, a gRPC status) without calling the
upstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from multidict import CIMultiDict

from devamb.faults.applies import Refusal
from devamb.faults.base import H2_PROTOCOLS, Call, Fault
from devamb.grpc.answers import grpc_of_http
from devamb.grpc.status import CODES
from devamb.profile.reader import Node
from devamb.proxy.response import Response

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = ("status", "body", "headers", "grpc_status", "grpc_message")


@dataclass(frozen=True)
class Params:
    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    grpc_status: int | None = None  # a gRPC call's status; None: mapped from `status`
    grpc_message: str | None = None
    H2_KEYS: ClassVar[tuple[str, ...]] = ("grpc_status", "grpc_message")


def parse(node: Node, protocol: str) -> Params | None:
    status = node.child("status").integer(low=200, high=599) if node.has("status") else 503
    body = node.child("body").string() if node.has("body") else ""
    headers = node.child("headers").string_map() if node.has("headers") else {}
    grpc_status = _grpc_status(node.child("grpc_status")) if node.has("grpc_status") else None
    message = node.child("grpc_message").string() if node.has("grpc_message") else None
    if protocol not in H2_PROTOCOLS:
        for key in ("grpc_status", "grpc_message"):
            if node.has(key):
                node.child(key).problem(f"{key!r} is for http2 and grpc services (gRPC "
                                        f"calls are HTTP/2)", key=True)
                return None
    if status is None or body is None or headers is None:
        return None
    if (node.has("grpc_status") and grpc_status is None) or (
            node.has("grpc_message") and message is None):
        return None
    return Params(status, body, headers, grpc_status, message)


def _grpc_status(node: Node) -> int | None:
    """A gRPC status by name (UNAVAILABLE, any case) or number (1..16); OK is no abort."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 16:
            return value
        node.problem(f"grpc_status {value} is not a gRPC error status (1..16)")
        return None
    if isinstance(value, str) and value.upper() in CODES and value.upper() != "OK":
        return CODES[value.upper()]
    names = ", ".join(n for n in CODES if n != "OK")
    node.problem(f"{value!r} is not a gRPC error status; use one of {names} or 1..16")
    return None


class AbortFault(Fault):
    KIND = "abort"
    ORDER = 20
    PROTOCOLS = ("http", *H2_PROTOCOLS)
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

    async def before_call(self, call: Call) -> bool:
        p = self.params
        headers = {"x-devamb-fault": "abort", **p.headers}
        if call.grpc:  # `status` alone: the gRPC status a client maps it to (503: UNAVAILABLE)
            code = p.grpc_status if p.grpc_status is not None else grpc_of_http(p.status)
            message = p.grpc_message if p.grpc_message is not None else (
                p.body or "injected by devamb (fault abort)")
            await call.answer_grpc(code, message, headers)
            return True
        body = p.body or f'{{"error": "injected", "fault": "abort", "status": {p.status}}}'
        if "content-type" not in {k.lower() for k in headers}:
            headers["content-type"] = (
                "text/plain; charset=utf-8" if p.body else "application/json"
            )
        await call.answer(p.status, headers, body.encode())
        return True
