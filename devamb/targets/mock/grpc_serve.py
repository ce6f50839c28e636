"""A mock answering one gRPC call over HTTP/2 from its gRPC rules: the request messages are
read (and recorded), then response headers, the rule's message and trailers with its
grpc-status; a status other than OK is answered trailers-only. A method no rule names gets
UNIMPLEMENTED; a call that is not gRPC gets HTTP 415."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from devamb.grpc.framing import Frame, Splitter, frame
from devamb.grpc.messages import inflate
from devamb.grpc.path import is_grpc
from devamb.grpc.schema import Schema
from devamb.grpc.status import CODES
from devamb.grpc.tap import GrpcTap
from devamb.proxy.h2conn import as_text, header
from devamb.targets.mock.grpc_rules import GrpcRule

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers, H2Stream

MAX_REQUEST = 4 * 1024 * 1024  # request bytes a mock reads before it answers anyway


def percent_encode(message: str) -> str:
    """grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}"
                   for b in message.encode())


async def serve_call(stream: H2Stream, headers: H2Headers, exchange: Exchange,
                     rules: tuple[GrpcRule, ...], schema: Schema | None,
                     sleep: Callable[[float], Awaitable[None]]) -> GrpcRule | None:
    """Answer the call; the rule that answered it (None: no rule named its method)."""
    exchange.request_headers = as_text(headers)
    if not is_grpc(header(headers, b"content-type")):
        await _not_grpc(stream, exchange)
        return None
    encoding = header(headers, b"grpc-encoding")
    tap = GrpcTap(exchange.own_notes(), header(headers, b":path"), encoding)
    tap.use(schema)
    try:
        first: list[Frame] = []
        if not stream.ended_at_headers:
            await _read_request(stream, exchange, tap, first)
        path = exchange.path or ""
        candidates = [r for r in rules if r.method == path]
        request = _first_request(first, candidates, schema, encoding)
        rule = next((r for r in candidates if r.matches(request)), None)
        if rule is None:
            why = "matches the request" if candidates else ""
            _trailers_only(stream, exchange, tap, CODES["UNIMPLEMENTED"],
                           f"mock: no gRPC rule for {path} {why}".strip())
            return None
        if rule.delay:
            await sleep(rule.delay)
        if rule.status != 0 or rule.encoded is None:
            _trailers_only(stream, exchange, tap, rule.status, rule.message)
            return rule
        response: H2Headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        _respond_headers(stream, exchange, tap, response, end=False)
        body = frame(rule.encoded)
        exchange.response_body.add(body)
        tap.response_data(body)
        await stream.send_data(body)
        trailers: H2Headers = [(b"grpc-status", b"0")]
        exchange.own_notes().setdefault("http2", {})["trailers"] = as_text(trailers)
        tap.trailers(trailers)
        stream.send_trailers(trailers)
        return rule
    finally:
        tap.close()


def _first_request(first: list[Frame], rules: list[GrpcRule], schema: Schema | None,
                   encoding: str | None) -> dict[str, Any] | None:
    """The call's first request message as JSON with every field, for rules that match on
    it; None when no rule asks, or it cannot be decoded."""
    typed = next((r.input for r in rules if r.request is not None and r.input), None)
    if typed is None or schema is None or not first or first[0].data is None:
        return None
    data: bytes | None = first[0].data
    if first[0].compressed:
        data, _ = inflate(first[0].data, encoding)
    if data is None:
        return None
    from google.protobuf.message import DecodeError  # loaded by the schema already

    try:
        return schema.to_json(typed, data, full=True)
    except (DecodeError, RuntimeError, ValueError):
        return None


async def _read_request(stream: H2Stream, exchange: Exchange, tap: GrpcTap,
                        first: list[Frame]) -> None:
    splitter = Splitter(limit=MAX_REQUEST)
    while exchange.request_body.size <= MAX_REQUEST:
        item = await stream.next()
        if item.kind == "data":
            exchange.request_body.add(item.data)
            tap.request_data(item.data)
            if not first:
                first += splitter.feed(item.data)[:1]
            stream.ack(item.flow)
        elif item.kind == "trailers":
            exchange.own_notes().setdefault("http2", {})["request_trailers"] = as_text(item.headers)
            return
        elif item.kind == "end":
            return
        elif item.kind == "reset":
            exchange.error = exchange.error or (
                "the client connection was lost" if item.lost
                else f"the client reset the stream (code {item.code})")
            raise stream.gone or RuntimeError("the stream is gone")


def _respond_headers(stream: H2Stream, exchange: Exchange, tap: GrpcTap,
                     headers: H2Headers, end: bool) -> None:
    exchange.mark_first_byte()
    exchange.status = 200
    exchange.response_headers = as_text(headers)
    tap.response_headers(headers)
    stream.send_headers(headers, end=end)


def _trailers_only(stream: H2Stream, exchange: Exchange, tap: GrpcTap, status: int,
                   message: str) -> None:
    headers: H2Headers = [(b":status", b"200"), (b"content-type", b"application/grpc"),
                          (b"grpc-status", str(status).encode())]
    if message:
        headers.append((b"grpc-message", percent_encode(message).encode()))
    _respond_headers(stream, exchange, tap, headers, end=True)


async def _not_grpc(stream: H2Stream, exchange: Exchange) -> None:
    body = b"devamb: this mock answers gRPC calls only (content-type application/grpc)\n"
    headers: H2Headers = [(b":status", b"415"), (b"content-type", b"text/plain; charset=utf-8"),
                          (b"content-length", str(len(body)).encode())]
    exchange.mark_first_byte()
    exchange.status = 415
    exchange.response_headers = as_text(headers)
    exchange.response_body.add(body)
    stream.send_headers(headers)
    await stream.send_data(body, end=True)
