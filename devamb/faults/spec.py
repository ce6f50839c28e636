"""A fault as written in a profile (or sent to the control API): kind, params and scoping."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devamb.control.protocol import ControlError
from devamb.faults.applies import refusal
from devamb.faults.registry import KINDS
from devamb.profile.env import Interpolator
from devamb.profile.reader import Node, Reader
from devamb.profile.source import Source
from devamb.wire import transport

COMMON_KEYS = ("kind", "enabled", "probability", "direction", "match", "times", "after", "for")
MATCH_KEYS = ("method", "path", "header")
# what `match:` compares on a protocol-aware TCP service: fields of each command
COMMAND_MATCH_KEYS = {"postgres": ("sql",), "redis": ("command", "key")}
COMMAND_KINDS = ("latency", "reset", "error")  # kinds that can act on one command


@dataclass(frozen=True)
class Match:
    """Which HTTP requests (or HTTP/2 calls: a gRPC call's path is /pkg.Service/Method) a
    fault applies to; every given part must match."""

    methods: frozenset[str] = frozenset()
    path: str | None = None  # a glob: /charge*, /api/*/items
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> value glob
    command: Mapping[str, str] = field(default_factory=dict)  # postgres/redis: field -> pattern

    def matches_command(self, fields: Mapping[str, str]) -> bool:
        """A command of a protocol-aware TCP service: `sql` matches when its text contains the
        pattern (case and runs of spaces ignored; a glob when it has * ? or [), other fields
        (a Redis command, key) as case-insensitive globs."""
        for name, pattern in self.command.items():
            value = fields.get(name)
            if value is None:
                return False
            if name == "sql":
                text = " ".join(value.split()).lower()
                wanted = " ".join(pattern.split()).lower()
                if any(c in wanted for c in "*?["):
                    if not fnmatch.fnmatchcase(text, wanted):
                        return False
                elif wanted not in text:
                    return False
            elif not fnmatch.fnmatchcase(value.lower(), pattern.lower()):
                return False
        return True

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.path is not None and not fnmatch.fnmatchcase(path, self.path):
            return False
        for name, pattern in self.headers.items():
            value = headers.get(name)
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True

    def describe(self) -> str:
        parts = [*sorted(self.methods)] + ([self.path] if self.path else [])
        parts += [f"{k}: {v}" for k, v in self.headers.items()]
        parts += [f"{k}: {v}" for k, v in self.command.items()]
        return " ".join(parts)


@dataclass(frozen=True)
class FaultSpec:
    name: str
    kind: str
    params: Any  # the kind's own frozen dataclass
    enabled: bool = True
    probability: float = 1.0
    direction: str = "downstream"
    match: Match | None = None
    times: int | None = None  # fire this many times, then disable
    after: int = 0  # let this many matching exchanges through first
    duration: float | None = None  # `for:` seconds after enabling, then disable

    @property
    def per_command(self) -> bool:
        """Rolled for each command of a postgres/redis service, not for each connection."""
        return self.kind == "error" or (self.match is not None and bool(self.match.command))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "probability": self.probability,
            "direction": self.direction,
            "params": _params_json(self.params),
        }
        if self.match is not None:
            data["match"] = self.match.describe()
        for key, value in (("times", self.times), ("after", self.after or None),
                           ("for", self.duration)):
            if value is not None:
                data[key] = value
        return data


def _params_json(params: Any) -> dict[str, Any]:
    """The kind's params; its HTTP/2-only keys (`H2_KEYS`) only when they are set."""
    data = dataclasses.asdict(params)
    for f in dataclasses.fields(params):
        if f.name in getattr(params, "H2_KEYS", ()) and data.get(f.name) == f.default:
            del data[f.name]
    return data


def parse_fault(name: str, node: Node, protocol: str,
                targets: Mapping[str, str] | None = None) -> FaultSpec | None:
    """A fault entry, checked against the service's protocol and `targets` (name -> kind):
    a fault that could not act on one of them is refused here (faults/applies.py)."""
    if not isinstance(node.value, dict):
        node.problem("expected a mapping with at least 'kind'")
        return None
    before = len(node.reader.problems)
    kind_node = node.child("kind")
    kind_name = None
    if not node.has("kind"):
        node.problem(f"missing required key 'kind' (one of {', '.join(KINDS)})")
    else:
        kind_name = kind_node.one_of(KINDS)
    # the common keys are checked whatever is wrong with the kind, so all problems come out
    kind = KINDS[kind_name] if kind_name is not None else None
    params = None
    base = transport(protocol)  # a postgres/redis service is tcp for connection-level kinds
    if kind is not None:
        node.mapping(COMMON_KEYS + kind.keys)
        if protocol not in kind.protocols and base not in kind.protocols:
            why = refusal(kind.refused, protocol, None, "", None)
            *rest, last = kind.protocols
            where = f"{', '.join(rest)} and {last}" if rest else last
            kind_node.problem(f"{kind_name!r} faults apply to {where} services only"
                              + (f": {why}" if why else ""))
        params = kind.parse(node, protocol if protocol in kind.protocols else base)
    enabled = node.child("enabled").boolean() if node.has("enabled") else True
    probability = (
        node.child("probability").number(low=0.0, high=1.0) if node.has("probability") else 1.0
    )
    directions = kind.directions if kind is not None else ()
    direction = directions[0] if directions else None
    if node.has("direction") and kind is not None:
        direction = node.child("direction").one_of(directions)
    match = _match(node.child("match"), protocol) if node.has("match") else None
    if match is not None and match.command and kind_name not in (*COMMAND_KINDS, None):
        node.child("match").problem(f"'match' on a {protocol} service picks commands, and "
                                    f"{kind_name!r} acts on connections: use latency, reset "
                                    f"or error", key=True)
        return None
    times = _count(node.child("times"), 1) if node.has("times") else None
    after = _count(node.child("after"), 0) if node.has("after") else 0
    duration = node.child("for").duration() if node.has("for") else None
    if len(node.reader.problems) > before or kind_name is None or params is None:
        return None
    assert direction is not None and kind is not None
    why = refusal(kind.refused, base, targets, direction, params)
    if why is not None:
        kind_node.problem(f"{kind_name!r} is refused here: {why}")
        return None
    return FaultSpec(
        name=name, kind=kind_name, params=params, enabled=bool(enabled),
        probability=probability if probability is not None else 1.0,
        direction=direction, match=match, times=times, after=after or 0,
        duration=duration,
    )


def _count(node: Node, low: int) -> int | None:
    value = node.integer()
    if value is not None and value < low:
        node.problem(f"{node.name} must be at least {low}, got {value}")
        return None
    return value


def _match(node: Node, protocol: str) -> Match | None:
    if protocol in COMMAND_MATCH_KEYS:
        keys = COMMAND_MATCH_KEYS[protocol]
        if not node.mapping(keys):
            return None
        fields = {k: node.child(k).string() for k in keys if node.has(k)}
        if not fields and not node.value:  # (an unknown key alone is reported as such)
            node.problem(f"'match' on a {protocol} service needs one of {', '.join(keys)}")
            return None
        if not fields or any(v is None for v in fields.values()):
            return None
        return Match(command={k: v for k, v in fields.items() if v is not None})
    if protocol == "tcp":
        node.problem("'match' applies to http, http2 and grpc services only (a tcp service "
                     "has no requests to match)")
        return None
    if not node.mapping(MATCH_KEYS):
        return None
    methods: frozenset[str] = frozenset()
    if node.has("method"):
        raw = node.child("method").value
        values = raw if isinstance(raw, list) else [raw]
        if not all(isinstance(v, str) for v in values):
            node.child("method").problem("expected a method or a list of methods")
            return None
        methods = frozenset(v.upper() for v in values)
    path = node.child("path").string() if node.has("path") else None
    headers = node.child("header").string_map() if node.has("header") else {}
    return Match(methods, path, headers or {})


def parse_fault_json(name: str, data: object, protocol: str,
                     targets: Mapping[str, str] | None = None) -> FaultSpec:
    """A fault sent to the control API, checked by the same rules as the profile."""
    reader = Reader(Source("<request>", data), Interpolator({}, {}))
    spec = parse_fault(name, reader.root(), protocol, targets)
    if reader.problems or spec is None:
        messages = [f"{p.path}: {p.message}" if p.path else p.message for p in reader.problems]
        raise ControlError("; ".join(messages) or "invalid fault")
    return spec
