"""gRPC server reflection, asked over devamb's own HTTP/2 client (not grpcio): the files
that define a service, from `grpc.reflection.v1.ServerReflection` (or v1alpha, the same
messages under the older name). Hand-framed: the request and response are small."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devamb.grpc.framing import Splitter, frame
from devamb.grpc.schema import Schema, SchemaError
from devamb.grpc.status import name_of
from devamb.grpc.wire import LEN, WireError, iter_fields, string_field
from devamb.proxy.h2conn import H2Headers, H2Stream, StreamGone, header
from devamb.proxy.h2upstream import H2Upstream, UpstreamDown

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
FILE_BY_FILENAME = 3  # ServerReflectionRequest fields
FILE_CONTAINING_SYMBOL = 4
FILE_DESCRIPTOR_RESPONSE = 4  # ServerReflectionResponse fields
ERROR_RESPONSE = 7
MAX_ANSWER = 16 * 1024 * 1024
MAX_ROUNDS = 100  # imports asked for by name, at most


class ReflectionError(Exception):
    """The upstream does not offer reflection, or its answer was not usable; `transient`
    when it could not be asked (no connection, no answer in time): worth asking again."""

    def __init__(self, reason: str, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


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
            raise ReflectionError(f"no reflection answer in {timeout:g}s", True) from None
        except (UpstreamDown, StreamGone) as exc:
            raise ReflectionError(str(exc), True) from None
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
    """The files that define `service`: asked by symbol, then any import the server left out
    asked by file name, on one reflection stream."""
    headers: H2Headers = [
        (b":method", b"POST"), (b":scheme", call.scheme.encode()),
        (b":authority", call.authority.encode()),
        (b":path", f"/{reflection}/ServerReflectionInfo".encode()),
        (b"content-type", b"application/grpc"), (b"te", b"trailers"), *call.headers,
    ]
    stream = await upstream.open(headers, end=False)
    answers = _Answers(stream)
    try:
        await stream.send_data(frame(string_field(FILE_CONTAINING_SYMBOL, service)))
        files = {f.name: f for f in _files(await answers.next())}
        for _ in range(MAX_ROUNDS):
            missing = sorted({d for f in files.values() for d in f.dependency} - set(files))
            if not missing:
                break
            await stream.send_data(frame(string_field(FILE_BY_FILENAME, missing[0])))
            for found in _files(await answers.next()):
                files.setdefault(found.name, found)
            if missing[0] not in files:
                raise ReflectionError(f"the server did not send {missing[0]}")
        await stream.send_data(b"", end=True)
        while not stream.got_end:  # the server's trailers: the stream ends cleanly
            item = await stream.next()
            if item.kind == "data":
                stream.ack(item.flow)
            elif item.kind in ("trailers", "end", "reset"):
                break
    finally:
        if not stream.sent_end or not stream.got_end:
            with contextlib.suppress(Exception):
                stream.reset()
    return list(files.values())


class _Answers:
    """The reflection stream's response messages, one at a time."""

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream
        self.splitter = Splitter(limit=MAX_ANSWER)
        self.queued: deque[bytes] = deque()

    async def next(self) -> bytes:
        stream = self.stream
        while not self.queued:
            item = await stream.next()
            if item.kind == "data":
                self.queued += [f.data for f in self.splitter.feed(item.data) if f.data]
                stream.ack(item.flow)
            elif item.kind in ("headers", "trailers"):
                status = header(item.headers, b"grpc-status")
                if status is not None:  # trailers (or trailers only): no more answers
                    code = name_of(int(status)) if status.isdigit() else status
                    message = header(item.headers, b"grpc-message") or ""
                    raise ReflectionError(f"{code} {message}".strip())
            elif item.kind == "end":
                raise ReflectionError("the stream ended without an answer")
            elif item.kind == "reset":
                raise ReflectionError(f"the stream was reset (code {item.code})")
        return self.queued.popleft()


def _files(answer: bytes) -> list[descriptor_pb2.FileDescriptorProto]:
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

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
