"""Copy as grpcurl: one recorded (redacted) gRPC unary call as a grpcurl command line.

grpcurl sends JSON, which it encodes with a schema: the request must have been decoded (with
.proto files, a descriptor set or server reflection: `notes["grpc"]["messages"]`). The schema
options follow how devamb decoded it: `-proto`/`-import-path` for .proto files, `-protoset` for a
descriptor set, nothing for reflection (grpcurl asks the server, through devamb, as devamb did).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any

from devamb.inspect.masking import MASK

# Set by grpcurl itself, or by HTTP/2 and gRPC framing: never passed as -H.
_RESERVED = frozenset(
    {"content-type", "te", "user-agent", "content-length", "host", "connection",
     "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via",
     "x-devamb-target", "x-devamb-replay"}
)
_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class GrpcurlError(ValueError):
    """The exchange cannot be written as a grpcurl command; the message says why."""


def to_grpcurl(
    detail: dict[str, Any],
    address: str,
    *,
    protos: Sequence[str] = (),
    import_paths: Sequence[str] = (),
    protoset: str | None = None,
) -> str:
    """A copy-pasteable grpcurl command for a redacted exchange detail, sent to `address`
    (host:port, devamb's listener). `protos`/`import_paths` or `protoset` are the schema files
    the service decodes with; `#` lines before the command say what to fill in."""
    exchange_id = detail.get("id")
    grpc = (detail.get("notes") or {}).get("grpc")
    if grpc is None:
        kind = detail.get("protocol") or "http"
        raise GrpcurlError(
            f"exchange {exchange_id} is not a decoded gRPC call ({kind}); grpcurl needs the "
            f"request decoded as JSON: name the .proto files (proto:) or a descriptor_set in "
            f"the service, or let devamb use the server's reflection"
        )
    requests, responses = grpc.get("requests") or 0, grpc.get("responses") or 0
    if requests > 1 or responses > 1:
        raise GrpcurlError(
            f"exchange {exchange_id} is a streaming call ({requests} request and {responses} "
            f"response messages); export grpcurl writes unary calls only"
        )
    request = next((m for m in grpc.get("messages") or () if m.get("dir") == "request"), None)
    if request is None:
        raise GrpcurlError(f"exchange {exchange_id}: no request message was recorded")
    if request.get("json") is None:
        if request.get("raw") is not None or grpc.get("schema") == "raw":
            raise GrpcurlError(
                f"exchange {exchange_id}: the request was decoded without a schema (raw "
                f"fields); grpcurl needs a schema to encode JSON: name the .proto files "
                f"(proto:) or a descriptor_set in the service"
            )
        why = request.get("error") or "not decoded"
        raise GrpcurlError(f"exchange {exchange_id}: the request message is not JSON ({why})")

    notes: list[str] = []
    args = ["grpcurl", "-plaintext"]  # devamb's listener speaks h2c
    args += ["-d", json.dumps(request["json"], ensure_ascii=False)]
    schema = grpc.get("schema")
    if protoset:
        args += ["-protoset", protoset]
    elif protos:
        for directory in import_paths:
            args += ["-import-path", directory]
        for proto in protos:
            args += ["-proto", proto]
    elif schema in ("proto", "descriptor_set"):
        notes.append(f"devamb decoded this call with a {schema.replace('_', ' ')}: add "
                     f"-proto FILE -import-path DIR (or -protoset FILE) for it")
    for name, value in detail.get("request_headers") or ():
        lower = str(name).lower()
        if lower.startswith(":") or lower.startswith("grpc-") or lower in _RESERVED:
            if lower == "grpc-timeout" and (seconds := _seconds(str(value))) is not None:
                args += ["-max-time", f"{seconds:g}"]
            continue
        args += ["-H", f"{name}: {value}"]
    last = f"{shlex.quote(address)} {shlex.quote(_method(detail, grpc))}"
    command = " \\\n  ".join([*_join_pairs(args), last])
    if MASK in command:
        notes.append(f"values shown as {MASK} were redacted: fill them in before running")
    return "".join(f"# {note}\n" for note in notes) + command


def _method(detail: dict[str, Any], grpc: dict[str, Any]) -> str:
    """pkg.Service/Method, from the record or else from the path /pkg.Service/Method."""
    if grpc.get("service") and grpc.get("method"):
        return f"{grpc['service']}/{grpc['method']}"
    return (detail.get("path") or "").lstrip("/")


def _seconds(timeout: str) -> float | None:
    """A grpc-timeout header (`100m`, `5S`) in seconds."""
    match = _TIMEOUT.fullmatch(timeout.strip())
    return int(match[1]) * _UNIT[match[2]] if match else None


def _join_pairs(args: list[str]) -> list[str]:
    """Shell words, one option with its value per line."""
    lines = [shlex.quote(args[0])]
    i = 1
    while i < len(args):
        word = args[i]
        if word.startswith("-") and word != "-plaintext" and i + 1 < len(args):
            lines.append(f"{word} {shlex.quote(args[i + 1])}")
            i += 2
        else:
            lines.append(shlex.quote(word))
            i += 1
    return [f"{lines[0]} {lines[1]}", *lines[2:]] if len(lines) > 1 else lines
