"""The record of gRPC calls through a `protocol: grpc` service, with a real grpcio Greeter
and client: names, status, counts each way, messages decoded raw, with the profile's schema
(`proto:` / `descriptor_set:`) or with server reflection."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory
from tests.grpc.greeter import GREET, Client, Greeter, Types, compile_set

PROFILE = """
version: 1
services:
  g:
    listen: 0
    protocol: grpc
    target: up
    timeout: 10s
    targets:
      up: http://127.0.0.1:{port}
"""


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_set(tmp_path_factory.mktemp("set") / "greet.pb")


@pytest.fixture(scope="module")
def types(descriptor_set: bytes) -> Types:
    return Types(descriptor_set)


@pytest.fixture
def greeter(types: Types) -> Iterator[Greeter]:
    with Greeter(types) as server:
        yield server


async def _records(engine: Engine, count: int) -> list[Any]:
    for _ in range(500):
        found = engine.store.recent(count)
        if len(found) >= count and all(e.duration_ms is not None for e in found):
            return found
        await asyncio.sleep(0.02)
    return engine.store.recent(count)


def _port(engine: Engine) -> int:
    bound = engine.services["g"].bound
    assert bound is not None
    return bound[1]


async def _all_kinds(engine: Engine, types: Types) -> dict[str, Any]:
    """One call of each kind and an error; the records by method (the error as 'fail')."""
    client = Client(types, _port(engine))

    def calls() -> dict[str, Any]:
        try:
            hello = client.hello
            out: dict[str, Any] = {"Say": client.say(hello(name="ada", times=2), timeout=10)}
            out["Many"] = [r.text for r in client.many(hello(name="n", times=3), timeout=10)]
            out["Gather"] = client.gather(iter([hello(name=n) for n in "abcd"]), timeout=10)
            out["Talk"] = [r.text for r in client.talk(iter([hello(name="xy"), hello(name="z")]),
                                                        timeout=10)]
            with pytest.raises(grpc.RpcError) as failed:
                client.say(hello(name="fail"), timeout=10)
            out["fail"] = failed.value
            return out
        finally:
            client.close()

    answers = await asyncio.to_thread(calls)
    assert answers["Say"].text == "hello ada" and answers["Many"] == ["n 0", "n 1", "n 2"]
    assert answers["Gather"].text == "a,b,c,d" and answers["Talk"] == ["yx", "z"]
    assert answers["fail"].code() == grpc.StatusCode.NOT_FOUND
    records = await _records(engine, 5)
    by: dict[str, Any] = {}
    for record in records:
        note = record.notes["grpc"]
        by["fail" if note["code"] == "NOT_FOUND" else note["method"]] = record
    return by


async def test_names_status_and_counts_decoded_raw_without_a_schema(
        make_engine: EngineFactory, greeter: Greeter, types: Types) -> None:
    engine = await make_engine(PROFILE.format(port=greeter.port))
    by = await _all_kinds(engine, types)
    say = by["Say"].notes["grpc"]
    assert {k: say[k] for k in ("service", "method", "status", "code", "message", "requests",
                                "responses", "schema")} == {
        "service": "test.greet.Greeter", "method": "Say", "status": 0, "code": "OK",
        "message": "", "requests": 1, "responses": 1, "schema": "raw"}
    assert by["Say"].status == 200
    request, response = say["messages"]
    assert request["dir"] == "request" and response["dir"] == "response"
    assert request["raw"] == [{"field": 1, "type": "string", "value": "ada"},
                              {"field": 2, "type": "varint", "value": 2}]
    assert request["json"] is None and request["type"] is None and request["error"] is None
    assert request["size"] == 7 and request["compressed"] is False
    counts = {m: (by[m].notes["grpc"]["requests"], by[m].notes["grpc"]["responses"])
              for m in ("Many", "Gather", "Talk")}
    assert counts == {"Many": (1, 3), "Gather": (4, 1), "Talk": (2, 2)}
    fail = by["fail"].notes["grpc"]
    assert (fail["status"], fail["code"], fail["message"]) == (
        5, "NOT_FOUND", "no such name: ünïcode 100%")
    assert fail["responses"] == 0
    summary = by["fail"].to_json()["notes"]["grpc"]  # every event carries it: no messages
    assert "messages" not in summary
    assert (summary["service"], summary["method"], summary["code"]) == (
        "test.greet.Greeter", "Say", "NOT_FOUND")
    assert len(by["fail"].detail()["notes"]["grpc"]["messages"]) == 1


async def test_grpc_filters_select_calls_by_method_and_status(
        make_engine: EngineFactory, greeter: Greeter, types: Types) -> None:
    from devamb.inspect.filter import compile_filter

    engine = await make_engine(PROFILE.format(port=greeter.port))
    by = await _all_kinds(engine, types)
    records = list(by.values())

    def chosen(text: str) -> set[str]:
        keep = compile_filter(text)
        return {name for name, record in by.items() if keep(record)}

    assert chosen("~grpc Greeter/Say") == {"Say", "fail"}
    assert chosen("~grpc /test.greet.Greeter/Many") == {"Many"}
    assert chosen("~gs not_found") == {"fail"} == chosen("~gs 5")
    assert chosen("~gs OK & ~grpc Say") == {"Say"}
    assert chosen("!~gs OK") == {"fail"}
    assert len(records) == 5
    from devamb.inspect.filter import FilterError

    with pytest.raises(FilterError) as bad:
        compile_filter("~gs NOPE")
    assert "bad gRPC status 'NOPE'" in str(bad.value)
    assert str(compile_filter("~gs 14")) == "~gs UNAVAILABLE"


SCHEMA_PROFILE = PROFILE + "    {key}: {value}\n"


async def test_messages_decode_to_json_with_the_profiles_proto_files(
        make_engine: EngineFactory, greeter: Greeter, types: Types, tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    shutil.copy(GREET, tmp_path / "protos" / GREET.name)
    engine = await make_engine(SCHEMA_PROFILE.format(port=greeter.port, key="proto",
                                                     value="[protos/*.proto]"))
    by = await _all_kinds(engine, types)
    say = by["Say"].notes["grpc"]
    assert say["schema"] == "proto"
    request, response = say["messages"]
    assert (request["type"], request["json"], request["raw"], request["error"]) == (
        "test.greet.Hello", {"name": "ada", "times": 2}, None, None)
    assert (response["type"], response["json"]) == (
        "test.greet.Reply", {"text": "hello ada", "count": "2"})
    many = by["Many"].notes["grpc"]["messages"]
    assert [m["json"] for m in many if m["dir"] == "response"] == [
        {"text": "n 0"}, {"text": "n 1", "count": "1"}, {"text": "n 2", "count": "2"}]


async def test_messages_decode_with_a_descriptor_set(
        make_engine: EngineFactory, greeter: Greeter, types: Types, descriptor_set: bytes,
        tmp_path: Path) -> None:
    (tmp_path / "api.pb").write_bytes(descriptor_set)
    engine = await make_engine(SCHEMA_PROFILE.format(port=greeter.port, key="descriptor_set",
                                                     value="api.pb"))
    client = Client(types, _port(engine))

    def call() -> Any:
        try:
            stamp = types.cls("google.protobuf.Timestamp")(seconds=1_700_000_000)
            inner = types.cls("test.greet.Inner")(tags=["a", "b"], blob=b"\x00\xff")
            return client.say(client.hello(name="x", inner=inner, at=stamp), timeout=10)
        finally:
            client.close()

    await asyncio.to_thread(call)
    (record,) = await _records(engine, 1)
    note = record.notes["grpc"]
    assert note["schema"] == "descriptor_set"
    assert note["messages"][0]["json"] == {
        "name": "x", "inner": {"tags": ["a", "b"], "blob": "AP8="},
        "at": "2023-11-14T22:13:20Z"}


async def test_messages_decode_with_server_reflection_when_the_profile_has_no_schema(
        make_engine: EngineFactory, types: Types) -> None:
    with Greeter(types, reflection=True) as server:
        engine = await make_engine(PROFILE.format(port=server.port))
        by = await _all_kinds(engine, types)
    say = by["Say"].notes["grpc"]
    assert say["schema"] == "reflection"
    assert [m["json"] for m in say["messages"]] == [
        {"name": "ada", "times": 2}, {"text": "hello ada", "count": "2"}]
    assert by["Talk"].notes["grpc"]["schema"] == "reflection"
    records = engine.store.recent(10)
    assert len(records) == 5  # reflection was asked beside the calls, not recorded as one


async def test_a_message_that_does_not_match_its_type_is_shown_raw_with_the_error(
        make_engine: EngineFactory, greeter: Greeter, types: Types, tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    shutil.copy(GREET, tmp_path / "protos" / GREET.name)
    engine = await make_engine(SCHEMA_PROFILE.format(port=greeter.port, key="proto",
                                                     value="[protos/greet.proto]"))
    client = Client(types, _port(engine))

    def call() -> grpc.StatusCode:
        try:
            with pytest.raises(grpc.RpcError) as failed:
                client.raw(b"\x0a\x02\xff\xfe" + b"\x10", timeout=10)  # bad UTF-8, cut varint
            return failed.value.code()
        finally:
            client.close()

    code = await asyncio.to_thread(call)
    assert code != grpc.StatusCode.OK
    (record,) = await _records(engine, 1)
    request = record.notes["grpc"]["messages"][0]
    assert request["type"] == "test.greet.Hello" and request["json"] is None
    assert request["raw"] == [{"field": 1, "type": "bytes", "value": "fffe"}]
    assert request["error"].startswith("not a test.greet.Hello: ")
    assert "varint runs past the end" in request["error"]


async def test_reflection_is_asked_once_per_upstream_and_service(
        make_engine: EngineFactory, types: Types) -> None:
    with Greeter(types, reflection=True) as server:
        engine = await make_engine(PROFILE.format(port=server.port))
        await _all_kinds(engine, types)
        await _all_kinds(engine, types)
        asked = [m for m in server.calls if "ServerReflection" in m]
    # v1 first (this grpcio-reflection answers UNIMPLEMENTED), then v1alpha: once for all calls
    assert asked == ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                     "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]
    records = engine.store.recent(10)
    assert {r.notes["grpc"]["schema"] for r in records} == {"reflection"}, [
        (r.path, r.notes["grpc"]) for r in records if r.notes["grpc"]["schema"] != "reflection"]


async def test_without_reflection_the_calls_decode_raw_and_it_is_not_asked_again(
        make_engine: EngineFactory, greeter: Greeter, types: Types) -> None:
    engine = await make_engine(PROFILE.format(port=greeter.port))
    await _all_kinds(engine, types)
    await _all_kinds(engine, types)
    asked = [m for m in greeter.calls if "ServerReflection" in m]
    assert len(asked) == 2  # v1, then v1alpha: both UNIMPLEMENTED, once
    assert {r.notes["grpc"]["schema"] for r in engine.store.recent(10)} == {"raw"}


async def test_the_first_50_messages_each_way_are_kept_all_counted(
        make_engine: EngineFactory, greeter: Greeter, types: Types) -> None:
    engine = await make_engine(PROFILE.format(port=greeter.port))
    client = Client(types, _port(engine))

    def call() -> list[Any]:
        try:
            hellos = iter([client.hello(name=f"m{i}", times=i) for i in range(60)])
            return list(client.talk(hellos, timeout=10))
        finally:
            client.close()

    assert len(await asyncio.to_thread(call)) == 60
    (record,) = await _records(engine, 1)
    note = record.notes["grpc"]
    assert (note["requests"], note["responses"]) == (60, 60)
    requests = [m for m in note["messages"] if m["dir"] == "request"]
    assert len(requests) == 50 == len(note["messages"]) - len(requests)
    assert requests[49]["raw"] == [{"field": 1, "type": "string", "value": "m49"},
                                   {"field": 2, "type": "varint", "value": 49}]


async def test_large_messages_are_sized_not_kept_and_gzip_ones_inflated(
        make_engine: EngineFactory, greeter: Greeter, types: Types, tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    shutil.copy(GREET, tmp_path / "protos" / GREET.name)
    engine = await make_engine(SCHEMA_PROFILE.format(port=greeter.port, key="proto",
                                                     value="[protos/*.proto]"))
    big = Client(types, _port(engine))
    zipped = Client(types, _port(engine), gzip=True)

    def calls() -> None:
        try:
            big.say(big.hello(name="x" * 70_000), timeout=10)
            zipped.say(zipped.hello(name="z" * 500), timeout=10)
        finally:
            big.close()
            zipped.close()

    await asyncio.to_thread(calls)
    large, small = sorted(await _records(engine, 2), key=lambda r: r.id)
    request = large.notes["grpc"]["messages"][0]
    assert (request["size"], request["json"], request["raw"]) == (70_004, None, None)
    assert request["error"] == "70004 bytes; too large to keep"
    assert large.notes["grpc"]["code"] == "OK"
    request = small.notes["grpc"]["messages"][0]
    assert request["compressed"] is True and request["size"] < 100
    assert request["json"] == {"name": "z" * 500}


async def test_grpc_calls_are_understood_on_an_http2_service_too(
        make_engine: EngineFactory, greeter: Greeter, types: Types) -> None:
    engine = await make_engine(PROFILE.format(port=greeter.port).replace("grpc", "http2"))
    by = await _all_kinds(engine, types)
    assert by["Say"].protocol == "http2"
    assert by["fail"].notes["grpc"]["code"] == "NOT_FOUND"


async def test_show_prints_the_call_and_its_messages(
        make_engine: EngineFactory, greeter: Greeter, types: Types,
        capsys: pytest.CaptureFixture[str]) -> None:
    from devamb.cli.output import print_detail, print_exchange

    engine = await make_engine(PROFILE.format(port=greeter.port))
    by = await _all_kinds(engine, types)
    record = by["fail"]
    print_exchange(record.to_json(), as_json=False)
    service = engine.services["g"]
    print_detail(service.redaction.detail(by["Say"]))
    out = capsys.readouterr().out
    assert "POST /test.greet.Greeter/Say  grpc NOT_FOUND" in out
    assert "grpc /test.greet.Greeter/Say: OK" in out
    assert '{"field": 1, "type": "string", "value": "ada"}' in out


def _partial_reflection(types: Types, descriptor_set: bytes, asked: list[str]) -> Any:
    """A reflection service that answers a symbol with its file alone (imports left out) and
    a file name with that file, as some servers do."""
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    files = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file}

    def info(requests: Any, context: grpc.ServicerContext) -> Any:
        for request in requests:
            if request.HasField("file_containing_symbol"):
                asked.append(f"symbol {request.file_containing_symbol}")
                name = "greet.proto"
            else:
                asked.append(f"file {request.file_by_filename}")
                name = request.file_by_filename
            response = reflection_pb2.ServerReflectionResponse()
            response.file_descriptor_response.file_descriptor_proto.append(
                files[name].SerializeToString())
            yield response

    return grpc.method_handlers_generic_handler(
        "grpc.reflection.v1alpha.ServerReflection", {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                info, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
        })


async def test_reflection_asks_for_the_imports_a_server_left_out(
        make_engine: EngineFactory, types: Types, descriptor_set: bytes) -> None:
    asked: list[str] = []
    server = Greeter(types)
    server.server.add_generic_rpc_handlers((_partial_reflection(types, descriptor_set, asked),))
    with server:
        engine = await make_engine(PROFILE.format(port=server.port))
        by = await _all_kinds(engine, types)
    assert asked == ["symbol test.greet.Greeter", "file google/protobuf/timestamp.proto"]
    say = by["Say"].notes["grpc"]
    assert say["schema"] == "reflection" and say["messages"][0]["json"] == {
        "name": "ada", "times": 2}
