"""The explicit registry of target kinds, and how a profile entry picks its kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import ServiceSpec, TargetSpec
from devamb.targets import echo, pool, split, url
from devamb.targets.base import Target
from devamb.targets.docker import target as docker
from devamb.targets.mock import target as mock
from devamb.targets.shards import target as shards


@dataclass(frozen=True)
class TargetKind:
    key: str  # the mapping key that selects this kind in a profile
    parse: Callable[[str, Node, str], TargetSpec | None]  # (name, node, protocol)
    build: Callable[[TargetSpec, ServiceSpec], Target]


KINDS: dict[str, TargetKind] = {
    "url": TargetKind("url", url.parse, url.UrlTarget),
    "echo": TargetKind("echo", echo.parse, echo.EchoTarget),
    "docker": TargetKind("docker", docker.parse, docker.DockerTarget),
    "endpoints": TargetKind("endpoints", pool.parse, pool.PoolTarget),
    "split": TargetKind("split", split.parse, split.SplitTarget),
    "shards": TargetKind("shards", shards.parse, shards.build),
    "mock": TargetKind("mock", mock.parse, mock.MockTarget),
}
KIND_KEYS = tuple(KINDS)


def parse_target(name: str, node: Node, protocol: str) -> TargetSpec | None:
    """A target entry: a bare URL, the word `echo`, or a mapping keyed by its kind."""
    value = node.value
    if isinstance(value, str):
        kind = "echo" if value == "echo" else "url"
        return KINDS[kind].parse(name, node, protocol)
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
    return KINDS[present[0]].parse(name, node, protocol)


def build_target(spec: TargetSpec, service: ServiceSpec) -> Target:
    return KINDS[spec.kind].build(spec, service)
