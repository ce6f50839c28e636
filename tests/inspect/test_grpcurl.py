"""Copy as grpcurl, on exchange details shaped as the shared contract says (notes["grpc"])."""

from __future__ import annotations

import copy
import json
import shlex
from typing import Any

import pytest

from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.grpcurl import GrpcurlError, to_grpcurl
from devamb.inspect.masking import MASK
from devamb.inspect.redaction import Redaction

ADDRESS = "127.0.0.1:9001"


def grpc_notes(**changes: Any) -> dict[str, Any]:
    notes: dict[str, Any] = {
        "service": "shop.Cart", "method": "Add", "status": 0, "code": "OK", "message": "",
        "requests": 1, "responses": 1,
        "messages": [
            {"dir": "request", "size": 12, "compressed": False, "type": "shop.AddRequest",
             "json": {"item": "it's", "count": 2, "tags": ["a b"]}, "raw": None, "error": None},
            {"dir": "response", "size": 3, "compressed": False, "type": "shop.Cart",
             "json": {"total": 2}, "raw": None, "error": None},
        ],
        "schema": "reflection",
    }
    notes.update(changes)
    return notes


def detail(notes: dict[str, Any] | None = None, headers: list[tuple[str, str]] | None = None,
           secrets: tuple[str, ...] = (), redact: tuple[str, ...] = ()) -> dict[str, Any]:
    """A redacted detail of a recorded gRPC call, as the desk gives `to_grpcurl`."""
    record = Exchange(
        7, "cart", "local", "grpc", "127.0.0.1:5", method="POST", path="/shop.Cart/Add",
        status=200,
        request_headers=headers if headers is not None else [
            (":method", "POST"), (":scheme", "http"), (":path", "/shop.Cart/Add"),
            (":authority", "127.0.0.1:50051"), ("content-type", "application/grpc"),
            ("te", "trailers"), ("user-agent", "grpc-python/1.70"),
            ("grpc-accept-encoding", "identity,deflate,gzip"), ("grpc-timeout", "2500m"),
            ("authorization", "Bearer abc"), ("x-tenant", "acme"), ("trace-bin", "AAEC"),
        ],
        request_body=BodyPreview(), notes={"grpc": notes if notes is not None else grpc_notes()},
    )
    return Redaction.from_names(redact, secrets=secrets).detail(record)


def test_a_unary_call_by_reflection() -> None:
    command = to_grpcurl(detail(), ADDRESS)
    lines = command.splitlines()
    assert lines[0] == f"# values shown as {MASK} were redacted: fill them in before running"
    argv = shlex.split("\n".join(lines[1:]).replace("\\\n", " "))
    assert argv == [
        "grpcurl", "-plaintext",
        "-d", json.dumps({"item": "it's", "count": 2, "tags": ["a b"]}),
        "-max-time", "2.5",
        "-H", f"authorization: Bearer {MASK}",
        "-H", "x-tenant: acme",
        "-H", "trace-bin: AAEC",
        ADDRESS, "shop.Cart/Add",
    ]
    assert command.splitlines()[-1] == "  127.0.0.1:9001 shop.Cart/Add"


def test_proto_files_and_a_descriptor_set() -> None:
    with_protos = to_grpcurl(detail(grpc_notes(schema="proto")), ADDRESS,
                             protos=["cart.proto", "item.proto"], import_paths=["/p/protos"])
    argv = shlex.split(with_protos.split("\n", 1)[1].replace("\\\n", " "))
    assert argv[4:10] == ["-import-path", "/p/protos", "-proto", "cart.proto",
                          "-proto", "item.proto"]
    protoset = to_grpcurl(detail(grpc_notes(schema="descriptor_set")), ADDRESS,
                          protoset="/p/cart.pb")
    assert "-protoset /p/cart.pb" in protoset
    unnamed = to_grpcurl(detail(grpc_notes(schema="proto")), ADDRESS)
    assert unnamed.startswith("# devamb decoded this call with a proto: add -proto FILE")


def test_a_secret_in_the_request_json_is_masked() -> None:
    notes = grpc_notes()
    notes["messages"][0]["json"] = {"key": "s3cr3t-value"}
    command = to_grpcurl(detail(notes, headers=[], secrets=("s3cr3t-value",)), ADDRESS)
    assert "s3cr3t-value" not in command and MASK in command
    assert command.startswith("# values shown as")


@pytest.mark.parametrize(
    ("notes", "reason"),
    [
        (None, r"not a decoded gRPC call .* grpcurl needs the request decoded as JSON"),
        ({"requests": 3}, r"streaming call \(3 request and 1 response messages\).*unary"),
        ({"responses": 20}, r"streaming call"),
        ({"messages": []}, "no request message was recorded"),
        ("raw", r"decoded without a schema \(raw fields\); grpcurl needs a schema"),
        ("bad", r"the request message is not JSON \(field 1: wrong wire type\)"),
    ],
)
def test_what_cannot_be_written_says_why(notes: Any, reason: str) -> None:
    given = detail()
    if notes is None:
        given["notes"] = {}
        given["protocol"] = "http2"
    elif notes == "raw":
        given["notes"]["grpc"]["schema"] = "raw"
        given["notes"]["grpc"]["messages"][0].update(json=None, raw=[{"1": "x"}])
    elif notes == "bad":
        given["notes"]["grpc"]["messages"][0].update(json=None,
                                                    error="field 1: wrong wire type")
    else:
        given["notes"]["grpc"].update(copy.deepcopy(notes))
    with pytest.raises(GrpcurlError, match=reason):
        to_grpcurl(given, ADDRESS)


def test_the_method_comes_from_the_path_when_the_record_lacks_it() -> None:
    given = detail(grpc_notes(service=None, method=None), headers=[])
    assert shlex.split(to_grpcurl(given, "[::1]:9"))[-2:] == ["[::1]:9", "shop.Cart/Add"]


def test_named_fields_in_the_request_json_are_masked_as_in_a_json_body() -> None:
    notes = grpc_notes()
    notes["messages"][0]["json"] = {"user": {"name": "ada", "password": "pw1"}}
    given = detail(notes, headers=[], redact=("password",))
    command = to_grpcurl(given, ADDRESS)
    assert "pw1" not in command and f'"password": "{MASK}"' in command
    assert notes["messages"][0]["json"]["user"]["password"] == "pw1"  # the record is kept
