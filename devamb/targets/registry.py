"""The explicit registry of target kinds, and how a profile entry picks its kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import TargetSpec
from devamb.targets import echo, url
from devamb.targets.base import Target, TargetContext

BOTH = frozenset({"http", "tcp"})
H2_PROTOCOLS = frozenset({"http2", "grpc"})  # services whose calls are HTTP/2 streams


@dataclass(frozen=True)
class TargetKind:
    key: str  # the mapping key that selects this kind in a profile
    parse: Callable[[str, Node, str], TargetSpec | None]  # (name, node, protocol)
    build: Callable[[TargetSpec, TargetContext], Target]
    protocols: frozenset[str]  # the service protocols it serves; others are refused

    def refusal(self, protocol: str) -> str | None:
        """Why a `protocol` service cannot use this kind (None: it can)."""
        if protocol in self.protocols:
            return None
        return f"{self.key} targets serve {' and '.join(sorted(self.protocols))} services only"


ALL = BOTH | H2_PROTOCOLS


# The Docker SDK (with requests and urllib3: ~10 MiB, 0.2 s) is imported by a profile that has
# a docker target, when its entry is read; other profiles never load it.
def parse_docker(name: str, node: Node, protocol: str) -> TargetSpec | None:
    from devamb.targets.docker.spec import parse

    return parse(name, node, protocol)


def build_docker(spec: TargetSpec, context: TargetContext) -> Target:
    from devamb.targets.docker.target import DockerTarget

    return DockerTarget(spec, context)


# Likewise pools, splits, shards and mocks (with the cluster code, RESP, re2 and the mock
# server: ~6 MiB together): a profile that has none never imports them (issue 22).
def parse_pool(name: str, node: Node, protocol: str) -> TargetSpec | None:
    from devamb.targets.pool import parse

    return parse(name, node, protocol)


def build_pool(spec: TargetSpec, context: TargetContext) -> Target:
    from devamb.targets.pool import PoolTarget

    return PoolTarget(spec, context)


def parse_split(name: str, node: Node, protocol: str) -> TargetSpec | None:
    from devamb.targets.split import parse

    return parse(name, node, protocol)


def build_split(spec: TargetSpec, context: TargetContext) -> Target:
    from devamb.targets.split import SplitTarget

    return SplitTarget(spec, context)


def parse_shards(name: str, node: Node, protocol: str) -> TargetSpec | None:
    from devamb.targets.shards.spec import parse

    return parse(name, node, protocol)


def build_shards(spec: TargetSpec, context: TargetContext) -> Target:
    from devamb.targets.shards.target import build

    return build(spec, context)


def parse_mock(name: str, node: Node, protocol: str) -> TargetSpec | None:
    from devamb.targets.mock.target import parse

    return parse(name, node, protocol)


def build_mock(spec: TargetSpec, context: TargetContext) -> Target:
    from devamb.targets.mock.target import MockTarget

    return MockTarget(spec, context)


KINDS: dict[str, TargetKind] = {
    "url": TargetKind("url", url.parse, url.UrlTarget, ALL),  # h2c, or h2 over TLS
    "echo": TargetKind("echo", echo.parse, echo.EchoTarget, ALL),
    "docker": TargetKind("docker", parse_docker, build_docker, ALL),
    "endpoints": TargetKind("endpoints", parse_pool, build_pool, ALL),
    "split": TargetKind("split", parse_split, build_split, ALL),
    "shards": TargetKind("shards", parse_shards, build_shards, ALL),  # HTTP keys, or RESP
    "mock": TargetKind("mock", parse_mock, build_mock, frozenset({"http"}) | H2_PROTOCOLS),
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
