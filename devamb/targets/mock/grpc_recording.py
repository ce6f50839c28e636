"""Recording a grpc (or http2) service: its unary gRPC calls become `grpc:` rules of a mock
file, one per method (its latest answer), the response as the JSON the schema decoded.

A call is recorded when it ended with a status and, when OK, with one response message that was
decoded with a schema (a raw decode cannot be encoded again by a mock); streaming answers,
failed or faulted calls are counted as skipped."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from devamb.grpc.status import name_of
from devamb.targets.mock.writer import atomic_write

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.inspect.redaction import Redaction


def refusal(exchange: Exchange) -> str | None:
    """Why the call cannot become a rule (None: it can), before its detail is read."""
    call = exchange.notes.get("grpc")
    if not isinstance(call, dict):
        return "not a gRPC call"
    if exchange.error is not None:
        return "failed"
    if exchange.faults:
        return "injected fault"
    if call.get("status") is None:
        return "no gRPC status"
    if call.get("responses", 0) > 1:
        return "streaming response"
    return None


def rule_from(exchange: Exchange, redaction: Redaction) -> tuple[dict[str, Any] | None, str]:
    """The call's rule (with secrets masked), or None and why not."""
    detail = redaction.detail(exchange)
    call = (detail.get("notes") or {}).get("grpc") or {}
    rule: dict[str, Any] = {"method": f"/{call.get('service')}/{call.get('method')}"}
    status = int(call.get("status") or 0)
    if status != 0:
        rule["status"] = name_of(status)
        if call.get("message"):
            rule["message"] = call["message"]
        return rule, ""
    replies = [m for m in call.get("messages") or [] if m.get("dir") == "response"]
    if not replies:
        return None, "no response message"
    if replies[0].get("json") is None:
        return None, "not decoded with a schema"
    rule["response"] = replies[0]["json"]
    return rule, ""


def write_grpc_mock_file(rules: list[dict[str, Any]], to: Path, comment: str = "") -> Path:
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    if not rules:
        body = "grpc: []\n"
    else:
        body = yaml.safe_dump({"grpc": rules}, sort_keys=False, allow_unicode=True, width=100)
    atomic_write(to, (head + body).encode())
    return to
