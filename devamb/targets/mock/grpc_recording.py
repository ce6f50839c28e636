"""Recording a grpc (or http2) service: its unary gRPC calls become `grpc:` rules of a mock
file, the response as the JSON the schema decoded. A method that always answered the same gets
one rule; one whose answers differed gets a rule per request seen (`request:` its first message,
the latest answer to it), then one for any other request (the latest answer).

A call is recorded when it ended with a status and, when OK, with one response message that was
decoded with a schema (a raw decode cannot be encoded again by a mock); streaming answers,
failed or faulted calls are counted as skipped."""

from __future__ import annotations

import json
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


class Calls:
    """The recorded calls, by method and request, for `rules()`."""

    def __init__(self) -> None:
        self.count = 0
        # method -> request (canonical JSON text) -> (request, rule), the latest last
        self.methods: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}

    def add(self, exchange: Exchange, redaction: Redaction) -> str | None:
        """Record the call; why not (None: recorded)."""
        rule, request, why = rule_from(exchange, redaction)
        if rule is None:
            return why
        seen = self.methods.setdefault(rule["method"], {})
        key = json.dumps(request, sort_keys=True)
        seen.pop(key, None)
        seen[key] = (request, rule)
        self.count += 1
        return None

    def rules(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for seen in self.methods.values():
            answers = {json.dumps(_answer(rule), sort_keys=True) for _, rule in seen.values()}
            latest = list(seen.values())[-1][1]
            if len(answers) > 1:
                for request, rule in seen.values():
                    if isinstance(request, dict):
                        out.append({"method": rule["method"], "request": request,
                                    **_answer(rule)})
            out.append(latest)
        return out


def _answer(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if k != "method"}


def rule_from(exchange: Exchange, redaction: Redaction) -> tuple[
        dict[str, Any] | None, Any, str]:
    """The call's rule (with secrets masked) and its first request message (JSON, or None),
    or None and why not."""
    detail = redaction.detail(exchange)
    call = (detail.get("notes") or {}).get("grpc") or {}
    asked = [m.get("json") for m in call.get("messages") or [] if m.get("dir") == "request"]
    request = asked[0] if asked else None
    rule: dict[str, Any] = {"method": f"/{call.get('service')}/{call.get('method')}"}
    status = int(call.get("status") or 0)
    if status != 0:
        rule["status"] = name_of(status)
        if call.get("message"):
            rule["message"] = call["message"]
        return rule, request, ""
    replies = [m for m in call.get("messages") or [] if m.get("dir") == "response"]
    if not replies:
        return None, None, "no response message"
    if replies[0].get("json") is None:
        return None, None, "not decoded with a schema"
    rule["response"] = replies[0]["json"]
    return rule, request, ""


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
