"""A real grpcio Greeter (tests/grpc/protos/greet.proto) for the gRPC tests: the proto is
compiled with grpc_tools.protoc into a FileDescriptorSet, its message classes built from it,
the server made of generic handlers; optionally with server reflection on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

from devamb.grpc.protoc import well_known_include

PROTOS = Path(__file__).parent / "protos"
GREET = PROTOS / "greet.proto"
SERVICE = "test.greet.Greeter"
_lock = threading.Lock()


def compile_set(out: Path) -> bytes:
    """greet.proto and its imports as a FileDescriptorSet (written to `out`, returned)."""
    with _lock:  # protoc.main is not known to be thread-safe
        code = protoc.main(["protoc", f"-I{PROTOS}", f"-I{well_known_include()}",
                            "--include_imports", f"--descriptor_set_out={out}", str(GREET)])
    assert code == 0, f"protoc failed: {code}"
    return out.read_bytes()


class Types:
    """The message classes of a descriptor set."""

    def __init__(self, data: bytes) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
        self.pool = descriptor_pool.DescriptorPool()
        for proto in files.file:
            self.pool.Add(proto)
        self.Hello = self.cls("test.greet.Hello")
        self.Reply = self.cls("test.greet.Reply")

    def cls(self, name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(name))


def _handlers(types: Types) -> grpc.GenericRpcHandler:
    Reply = types.Reply

    def say(request: Any, context: grpc.ServicerContext) -> Any:
        if request.name == "fail":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such name: ünïcode 100%")
        return Reply(text=f"hello {request.name}", count=request.times)

    def many(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        for i in range(request.times):
            yield Reply(text=f"{request.name} {i}", count=i)

    def gather(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        names = [r.name for r in requests]
        return Reply(text=",".join(names), count=len(names))

    def talk(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            yield Reply(text=request.name[::-1], count=request.times)

    plain = {"request_deserializer": types.Hello.FromString,
             "response_serializer": Reply.SerializeToString}
    return grpc.method_handlers_generic_handler(SERVICE, {
        "Say": grpc.unary_unary_rpc_method_handler(say, **plain),
        "Many": grpc.unary_stream_rpc_method_handler(many, **plain),
        "Gather": grpc.stream_unary_rpc_method_handler(gather, **plain),
        "Talk": grpc.stream_stream_rpc_method_handler(talk, **plain),
    })


class _Seen(grpc.ServerInterceptor):
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.calls.append(details.method)
        return continuation(details)


class Greeter:
    """The server on 127.0.0.1, port 0 (`host` 0.0.0.0 inside a container)."""

    def __init__(self, types: Types, reflection: bool = False, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        self.calls: list[str] = []  # the methods called, in order (reflection's too)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  interceptors=(_Seen(self.calls),))
        self.server.add_generic_rpc_handlers((_handlers(types),))
        if reflection:
            from grpc_reflection.v1alpha import reflection as reflecting

            reflecting.enable_server_reflection(
                (SERVICE, reflecting.SERVICE_NAME), self.server, pool=types.pool
            )
        self.port = self.server.add_insecure_port(f"{host}:{port}")

    def __enter__(self) -> Greeter:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(None)


class Client:
    """A grpcio client of the Greeter at `port` (blocking: run it in a thread)."""

    def __init__(self, types: Types, port: int, gzip: bool = False) -> None:
        self.types = types
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", compression=grpc.Compression.Gzip if gzip else None)
        ser = {"request_serializer": types.Hello.SerializeToString,
               "response_deserializer": types.Reply.FromString}
        self.say = self.channel.unary_unary(f"/{SERVICE}/Say", **ser)
        self.many = self.channel.unary_stream(f"/{SERVICE}/Many", **ser)
        self.gather = self.channel.stream_unary(f"/{SERVICE}/Gather", **ser)
        self.talk = self.channel.stream_stream(f"/{SERVICE}/Talk", **ser)
        self.raw = self.channel.unary_unary(f"/{SERVICE}/Say")  # bytes in, bytes out

    def hello(self, **fields: Any) -> Any:
        return self.types.Hello(**fields)

    def close(self) -> None:
        self.channel.close()
