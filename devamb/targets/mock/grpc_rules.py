"""gRPC rules of a mock (on http2 and grpc services): a unary method's answer, from a mock
file or inline in the profile:

    grpc:
      - method: /demo.ping.Pinger/Ping       # the call's :path
        response: {text: pong}               # the output message as JSON (default: empty)
        status: OK                           # or UNAVAILABLE, NOT_FOUND, ... or a number
        message: ""                          # grpc-message, with a status other than OK
        delay: 50ms
        request: {name: ada}                 # only when the first request message has these
                                             # fields (as the .proto names them); any else

The response is encoded with the service's schema (`proto:` / `descriptor_set:`) at load:
a rule whose method or message the schema does not know is a problem at the rule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from devamb.grpc.path import split_path
from devamb.grpc.schema import Schema
from devamb.grpc.status import parse_code
from devamb.profile.problems import Problem
from devamb.profile.reader import Node, type_name

RULE_KEYS = ("method", "request", "response", "status", "message", "delay")


@dataclass(frozen=True)
class GrpcRule:
    index: int
    method: str  # /pkg.Service/Method
    response: Any  # JSON for the output message
    status: int = 0
    message: str = ""
    delay: float = 0.0
    where: Problem | None = field(default=None, compare=False)  # the rule's place, for
    # problems found once the schema is known (its message unused)
    encoded: bytes | None = None  # the response encoded (set when the schema is bound)
    output: str | None = None  # the output message's type
    request: dict[str, Any] | None = None  # fields the first request message must have
    wanted: dict[str, Any] | None = None  # `request` as the schema writes it (when bound)
    input: str | None = None  # the input message's type

    def matches(self, request: dict[str, Any] | None) -> bool:
        """Whether the first request message (`request`: JSON with every field, None when it
        could not be decoded) has the fields this rule asks for."""
        if self.request is None:
            return True
        return request is not None and _subset(self.request, self.wanted, request)


def _subset(shape: Any, wanted: Any, got: Any) -> bool:
    """`got` has `wanted`'s values at the keys `shape` (what the profile wrote) names."""
    if isinstance(shape, dict) and isinstance(wanted, dict):
        return isinstance(got, dict) and all(
            _subset(shape[key], wanted.get(key), got.get(key)) for key in shape)
    return bool(wanted == got)


def _unknown_key(shape: Any, wanted: Any, path: str = "") -> str | None:
    """The first key of `shape` the full JSON `wanted` does not have (a JSON name, say)."""
    if isinstance(shape, dict) and isinstance(wanted, dict):
        for key, value in shape.items():
            if key not in wanted:
                return f"{path}{key}"
            inner = _unknown_key(value, wanted[key], f"{path}{key}.")
            if inner is not None:
                return inner
    return None


def parse_rules(node: Node) -> tuple[GrpcRule, ...] | None:
    """The `grpc:` list; None after a problem."""
    if not isinstance(node.value, list):
        node.problem(f"expected a list of gRPC rules, got {type_name(node.value)}")
        return None
    before = len(node.reader.problems)
    rules: list[GrpcRule] = []
    for element in node.elements():
        rule = _rule(element, len(rules))
        if rule is not None:
            rules.append(rule)
    return None if len(node.reader.problems) > before else tuple(rules)


def _rule(node: Node, index: int) -> GrpcRule | None:
    if not node.mapping(RULE_KEYS, required=("method",)):
        return None
    method = node.child("method").string()
    if method is not None and split_path(method) is None:
        node.child("method").problem(f"{method!r} is not a gRPC method: /pkg.Service/Method")
        method = None
    response: Any = node.child("response").value if node.has("response") else {}
    if not isinstance(response, dict):
        node.child("response").problem(
            f"expected the response message as a mapping, got {type_name(response)}")
        response = None
    status = 0
    if node.has("status"):
        code = parse_code(node.child("status").value)
        if code is None:
            node.child("status").problem(
                f"{node.child('status').value!r} is not a gRPC status: a name such as "
                "UNAVAILABLE, or a number")
            return None
        status = code
    request: Any = node.child("request").value if node.has("request") else None
    if request is not None and not isinstance(request, dict):
        node.child("request").problem(
            f"expected the request fields as a mapping, got {type_name(request)}")
        return None
    message = node.child("message").string() if node.has("message") else ""
    delay = node.child("delay").duration() if node.has("delay") else 0.0
    if method is None or response is None or message is None or delay is None:
        return None
    node.reader.report(node.path, "")  # the rule's place, as its reader writes places
    where = node.reader.problems.pop()
    return GrpcRule(index, method, response, status, message, delay, where, request=request)


def bind(rules: tuple[GrpcRule, ...], schema: Schema | None) -> tuple[
        tuple[GrpcRule, ...], list[Problem]]:
    """The rules with their responses encoded by `schema`, and the problems of those that
    cannot be (no schema, a method it does not know, a response that does not fit)."""
    bound: list[GrpcRule] = []
    problems: list[Problem] = []
    for rule in rules:
        problem = None
        service, method = split_path(rule.method) or ("", "")
        types = schema.method_types(service, method) if schema is not None else None
        if schema is None:
            problem = (f"cannot encode the response of {rule.method}: the service has no "
                       "schema (add proto: or descriptor_set: to it)")
        elif types is None:
            problem = f"the service's schema has no method {rule.method}"
        else:
            problem = _request_problem(rule, schema, types[0])
            try:
                encoded = schema.from_json(types[1], rule.response)
            except ValueError as exc:
                problem = problem or f"the response is not a {types[1]}: {exc}"
            else:
                wanted = None
                if rule.request is not None and problem is None:
                    wanted = schema.to_json(types[0], schema.from_json(types[0], rule.request),
                                            full=True)
                if problem is None:
                    bound.append(dataclasses.replace(rule, encoded=encoded, output=types[1],
                                                     wanted=wanted, input=types[0]))
        if problem is not None and rule.where is not None:
            problems.append(dataclasses.replace(rule.where, message=problem))
    return tuple(bound), problems


def _request_problem(rule: GrpcRule, schema: Schema, input_type: str) -> str | None:
    if rule.request is None:
        return None
    try:
        full = schema.to_json(input_type, schema.from_json(input_type, rule.request), full=True)
    except ValueError as exc:
        return f"the request is not a {input_type}: {exc}"
    unknown = _unknown_key(rule.request, full)
    if unknown is not None:
        return (f"request field {unknown!r}: name the fields of {input_type} as its .proto "
                "does")
    return None
