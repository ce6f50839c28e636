"""Schemas from descriptor sets and from what reflection sends, and JSON both ways."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from devamb.grpc.reflection import ReflectionError, _files
from devamb.grpc.schema import Schema, SchemaError
from devamb.grpc.wire import string_field
from tests.grpc.greeter import SERVICE, compile_set


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[descriptor_pb2.FileDescriptorProto]:
    data = compile_set(tmp_path_factory.mktemp("set") / "greet.pb")
    return list(descriptor_pb2.FileDescriptorSet.FromString(data).file)


def test_files_in_any_order_make_the_schema(files: list) -> None:
    schema = Schema(reversed(files), "reflection")  # reflection sends the service's file first
    assert schema.method_types(SERVICE, "Talk") == ("test.greet.Hello", "test.greet.Reply")
    assert schema.method_types(SERVICE, "Nope") is None
    assert schema.method_types("no.Such", "Say") is None
    data = schema.from_json("test.greet.Hello", {"name": "a", "times": 3})
    assert schema.to_json("test.greet.Hello", data) == {"name": "a", "times": 3}
    with pytest.raises(ValueError, match="nope"):
        schema.from_json("test.greet.Hello", {"nope": 1})
    assert schema == Schema(files, "proto")  # the same descriptors


def test_missing_imports_and_garbage_are_schema_errors(files: list) -> None:
    greet = [f for f in files if f.name == "greet.proto"]
    with pytest.raises(SchemaError, match=r"missing imports: google/protobuf/timestamp\.proto"):
        Schema(greet, "reflection")
    with pytest.raises(SchemaError, match="not a FileDescriptorSet"):
        Schema.from_set(b"\xff\xff\xff", "descriptor_set")
    with pytest.raises(SchemaError, match="holds no files"):
        Schema.from_set(b"", "descriptor_set")


def test_reflection_answers_that_are_errors_or_garbage_are_refused(files: list) -> None:
    error = string_field(2, "symbol not found")
    answer = bytes([7 << 3 | 2, len(error)]) + error  # error_response
    with pytest.raises(ReflectionError, match="symbol not found"):
        _files(answer)
    with pytest.raises(ReflectionError, match="a bad answer"):
        _files(b"\x22\x05ab")
    with pytest.raises(ReflectionError, match="held no files"):
        _files(b"")
    inner = b"".join(bytes([0x0A]) + _varint(len(b)) + b
                     for b in (f.SerializeToString() for f in files))
    answer = bytes([4 << 3 | 2]) + _varint(len(inner)) + inner
    assert [f.name for f in _files(answer)] == [f.name for f in files]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
