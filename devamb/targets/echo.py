"""The built-in `echo` target: answers with what it received (HTTP, HTTP/2) or sends bytes back
(TCP). An HTTP/2 call gets the HTTP echo's JSON description; a gRPC call (content-type
application/grpc…) gets its request messages back as its response, with grpc-status 0."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from devamb.profile.reader import Node
from devamb.profile.schema import TargetSpec
from devamb.proxy.listen import bound_socket
from devamb.proxy.request import FrontRequest
from devamb.proxy.response import Response, StreamResponse
from devamb.targets.base import Target, TargetContext

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers, H2Stream


@dataclass(frozen=True)
class EchoTargetSpec(TargetSpec):
    KIND = "echo"

    def describe(self) -> str:
        return "built-in echo"


def parse(name: str, node: Node, protocol: str) -> EchoTargetSpec | None:
    if isinstance(node.value, dict) and not node.mapping(("echo",)):
        return None
    if isinstance(node.value, dict) and node.value["echo"] not in (None, True, {}):
        node.child("echo").problem("write just 'echo' (it takes no settings)")
        return None
    return EchoTargetSpec(name)


class EchoTarget(Target):
    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.context.protocol == "tcp":
            self._server = await asyncio.start_server(
                _echo_bytes, sock=bound_socket("127.0.0.1", 0))  # no resolver threads

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        exchange.request_headers = [(str(k), v) for k, v in request.headers.items()]
        async for chunk in request.iter_body():
            exchange.request_body.add(chunk)
        size = exchange.bytes_in
        body = json.dumps(
            {
                "service": self.context.service,
                "target": self.name,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body_size": size,
            },
            indent=2,
        ).encode()
        exchange.response_body.add(body)
        response = Response(body=body, content_type="application/json")
        exchange.response_headers = list(response.headers.items())
        return response

    answers_h2: ClassVar[bool] = True

    async def serve_h2(self, stream: H2Stream, headers: H2Headers, exchange: Exchange) -> None:
        exchange.request_headers = [(k.decode("latin-1"), v.decode("latin-1"))
                                    for k, v in headers]
        fields = {k: v for k, v in exchange.request_headers if not k.startswith(":")}
        pseudo = dict(exchange.request_headers)
        body = bytearray()
        ended = stream.ended_at_headers
        while not ended:
            item = await stream.next()
            if item.kind == "data":
                body += item.data
                exchange.request_body.add(item.data)
                stream.ack(item.flow)
            elif item.kind in ("end", "trailers"):
                ended = True
            elif item.kind == "reset":
                exchange.error = f"the client reset the stream (code {item.code})"
                return
        kind = fields.get("content-type", "")
        exchange.mark_first_byte()
        exchange.status = 200
        if kind.startswith("application/grpc"):
            out, head = bytes(body), [(":status", "200"), ("content-type", kind)]
        else:
            from devamb.proxy.h2request import H2Request  # (h2: with HTTP/2 calls only)

            request = H2Request(headers)
            out = json.dumps({
                "service": self.context.service, "target": self.name,
                "method": pseudo.get(":method"), "path": request.path,
                "query": dict(request.query), "headers": fields, "body_size": len(body),
                "protocol": "http2",
            }, indent=2).encode()
            head = [(":status", "200"), ("content-type", "application/json"),
                    ("content-length", str(len(out)))]
        exchange.response_headers = head
        exchange.response_body.add(out)
        grpc = kind.startswith("application/grpc")
        stream.send_headers([(k.encode(), v.encode()) for k, v in head],
                            end=not out and not grpc)
        if out:
            await stream.send_data(out, end=not grpc)
        if grpc:
            trailers = [(b"grpc-status", b"0")]
            exchange.own_notes().setdefault("http2", {})["trailers"] = [("grpc-status", "0")]
            stream.send_trailers(trailers)

    async def tcp_address(self) -> tuple[str, int]:
        assert self._server is not None, "target not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port


async def _echo_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()
