"""gRPC server reflection, asked over devamb's own HTTP/2 client (not grpcio): the files
that define a service, from `grpc.reflection.v1.ServerReflection` (or v1alpha, the same
messages under the older name). Hand-framed: the request and response are small."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from devamb.grpc.framing import Splitter, frame
from devamb.grpc.schema import Schema, SchemaError
from devamb.grpc.status import name_of
from devamb.grpc.tap import header
from devamb.grpc.wire import LEN, WireError, iter_fields, string_field
from devamb.proxy.h2conn import H2Headers, StreamGone
from devamb.proxy.h2upstream import H2Upstream, UpstreamDown

SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
FILE_CONTAINING_SYMBOL = 4  # ServerReflectionRequest field
FILE_DESCRIPTOR_RESPONSE = 4  # ServerReflectionResponse fields
ERROR_RESPONSE = 7
MAX_ANSWER = 16 * 1024 * 1024


class ReflectionError(Exception):
    """The upstream does not offer reflection, or its answer was not usable."""


@dataclass(frozen=True)
class Call:
    """How to reach the upstream's reflection service: as the calls relayed to it do."""

    authority: str
    scheme: str = "http"
    headers: tuple[tuple[bytes, bytes], ...] = ()  # the target's own (credentials)


async def reflect(upstream: H2Upstream, call: Call, service: str, timeout: float) -> Schema:
    """The schema of `service` as the upstream describes it."""
    failures: list[str] = []
    for name in SERVICES:
        try:
            files = await asyncio.wait_for(_ask(upstream, call, name, service), timeout)
        except TimeoutError:
            raise ReflectionError(f"no reflection answer in {timeout:g}s") from None
        except (UpstreamDown, StreamGone) as exc:
            raise ReflectionError(str(exc)) from None
        except ReflectionError as exc:
            failures.append(f"{name}: {exc}")
            continue
        try:
            return Schema(files, "reflection")
        except SchemaError as exc:
            raise ReflectionError(str(exc)) from None
    raise ReflectionError("; ".join(failures))


async def _ask(upstream: H2Upstream, call: Call, reflection: str,
               service: str) -> list[descriptor_pb2.FileDescriptorProto]:
    headers: H2Headers = [
        (b":method", b"POST"), (b":scheme", call.scheme.encode()),
        (b":authority", call.authority.encode()),
        (b":path", f"/{reflection}/ServerReflectionInfo".encode()),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"), *call.headers,
    ]
    stream = await upstream.open(headers, end=False)
    try:
        await stream.send_data(frame(string_field(FILE_CONTAINING_SYMBOL, service)), end=True)
        splitter = Splitter(limit=MAX_ANSWER)
        answers: list[bytes] = []
        status: str | None = None
        message = ""
        while True:
            item = await stream.next()
            if item.kind in ("headers", "trailers"):
                status = header(item.headers, b"grpc-status") or status
                message = header(item.headers, b"grpc-message") or message
            elif item.kind == "data":
                answers += [f.data for f in splitter.feed(item.data) if f.data is not None]
                stream.ack(item.flow)
            elif item.kind == "reset":
                raise ReflectionError(f"the stream was reset (code {item.code})")
            if item.kind in ("trailers", "end"):
                break
    finally:
        if not stream.sent_end or not stream.got_end:
            with contextlib.suppress(Exception):
                stream.reset()
    if status not in (None, "0"):
        code = name_of(int(status)) if status.isdigit() else status
        raise ReflectionError(f"{code} {message}".strip())
    if not answers:
        raise ReflectionError("no answer")
    return _files(answers[0])


def _files(answer: bytes) -> list[descriptor_pb2.FileDescriptorProto]:
    files: list[descriptor_pb2.FileDescriptorProto] = []
    try:
        for number, wire, value in iter_fields(answer):
            if number == ERROR_RESPONSE and isinstance(value, bytes):
                text = [v for n, _, v in iter_fields(value) if n == 2 and isinstance(v, bytes)]
                raise ReflectionError(text[0].decode("utf-8", "replace") if text else "error")
            if number == FILE_DESCRIPTOR_RESPONSE and wire == LEN and isinstance(value, bytes):
                for inner, _, blob in iter_fields(value):
                    if inner == 1 and isinstance(blob, bytes):
                        proto = descriptor_pb2.FileDescriptorProto()
                        proto.ParseFromString(blob)
                        files.append(proto)
    except (WireError, DecodeError) as exc:
        raise ReflectionError(f"a bad answer: {exc}") from None
    if not files:
        raise ReflectionError("the answer held no files")
    return files
