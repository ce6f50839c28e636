"""The explicit registry of target kinds, and how a profile entry picks its kind."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import TargetSpec
from devamb.targets import echo, url
from devamb.targets.base import Target, TargetContext
from devamb.wire import WIRE_PROTOCOLS

BOTH = frozenset({"http", "tcp"})
H2_PROTOCOLS = frozenset({"http2", "grpc"})  # services whose calls are HTTP/2 streams
WIRE = frozenset(WIRE_PROTOCOLS)  # tcp relays devamb reads (postgres, redis)


@dataclass(frozen=True)
class TargetKind:
    key: str  # the mapping key that selects this kind in a profile
    parse: Callable[[str, Node, str], TargetSpec | None]  # (name, node, protocol)
    build: Callable[[TargetSpec, TargetContext], Target]
    protocols: frozenset[str]  # the service protocols it serves (as declared); others refused
    why: Mapping[str, str] = dataclasses.field(default_factory=dict)  # why, where not plain

    def refusal(self, protocol: str) -> str | None:
        """Why a `protocol` service (its declared protocol: postgres, not tcp) cannot use this
        kind (None: it can)."""
        if protocol in self.protocols:
            return None
        served = f"{self.key} targets serve {' and '.join(sorted(self.protocols))} services only"
        reason = self.why.get(protocol)
        return f"{served} ({reason})" if reason else served


ALL = BOTH | H2_PROTOCOLS


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported at its first call: a profile without this kind never loads it.
    The Docker SDK (with requests and urllib3: ~10 MiB, 0.2 s), and pools, splits, shards and
    mocks (with the cluster code, RESP, re2 and the mock server: ~6 MiB together; issue 22)."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    return call


parse_docker = _lazy("devamb.targets.docker.spec", "parse")
build_docker = _lazy("devamb.targets.docker.target", "DockerTarget")
parse_pool = _lazy("devamb.targets.pool", "parse")
build_pool = _lazy("devamb.targets.pool", "PoolTarget")
parse_split = _lazy("devamb.targets.split", "parse")
build_split = _lazy("devamb.targets.split", "SplitTarget")
parse_shards = _lazy("devamb.targets.shards.spec", "parse")
build_shards = _lazy("devamb.targets.shards.target", "build")
parse_mock = _lazy("devamb.targets.mock.target", "parse")
build_mock = _lazy("devamb.targets.mock.target", "MockTarget")


_MOCK_WHY = "a mock answers HTTP requests and gRPC calls, not database clients"
# postgres and redis services relay to tcp targets (their targets see `tcp`); a kind that
# would answer a database client with something else than its server's protocol is refused.
KINDS: dict[str, TargetKind] = {
    "url": TargetKind("url", url.parse, url.UrlTarget, ALL | WIRE),  # h2c, or h2 over TLS
    # (RESP commands are arrays of bulk strings, a reply a client reads; PostgreSQL's
    # client and server messages differ)
    "echo": TargetKind("echo", echo.parse, echo.EchoTarget, ALL | {"redis"}, MappingProxyType({
        "postgres": "an echo sends the client's own messages back, which a PostgreSQL client "
                    "cannot read as the server's"})),
    "docker": TargetKind("docker", parse_docker, build_docker, ALL | WIRE),
    "endpoints": TargetKind("endpoints", parse_pool, build_pool, ALL | WIRE),
    "split": TargetKind("split", parse_split, build_split, ALL | WIRE),
    # HTTP keys, or RESP (key: redis) on tcp and redis services
    "shards": TargetKind("shards", parse_shards, build_shards, ALL | {"redis"},
                         MappingProxyType({"postgres": "shards speak RESP (key: redis) or "
                                           "route HTTP requests by key, not PostgreSQL"})),
    "mock": TargetKind("mock", parse_mock, build_mock, frozenset({"http"}) | H2_PROTOCOLS,
                       MappingProxyType(dict.fromkeys(WIRE_PROTOCOLS, _MOCK_WHY))),
}
KIND_KEYS = tuple(KINDS)


def target_kind(node: Node) -> TargetKind | None:
    """The kind of a target entry (a bare URL, the word `echo`, or a mapping keyed by its
    kind); None after a problem is reported."""
    value = node.value
    if isinstance(value, str):
        return KINDS["echo" if value == "echo" else "url"]
    if not isinstance(value, dict):
        node.problem(f"expected a URL, 'echo' or a mapping, got {type_name(value)}")
        return None
    present = [k for k in KIND_KEYS if k in value]
    if len(present) > 1:
        node.problem(f"a target has exactly one kind; found {', '.join(present)}")
        return None
    if not present:
        node.problem(f"a target needs one of the keys {', '.join(KIND_KEYS)}")
        return None
    return KINDS[present[0]]


def build_targets(specs: Mapping[str, TargetSpec], context: TargetContext) -> dict[str, Target]:
    """A service's targets, each given `context` with all of them as its siblings (the view
    is filled here, before any of them starts)."""
    built: dict[str, Target] = {}
    shared = dataclasses.replace(context, siblings=MappingProxyType(built))
    for name, spec in specs.items():
        built[name] = KINDS[spec.kind].build(spec, shared)
    return built
