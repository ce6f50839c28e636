"""The profile side of sharded targets: `shards: …` entries parsed into a ShardsTargetSpec.

HTTP services pick the key from a header, a path segment or a query parameter; TCP services
take `key: redis` (RESP-aware, like twemproxy). The running targets are in target.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import TargetSpec
from devamb.targets import url

KEYS = ("shards", "key", "eject_after", "eject_for", "default", "auth")
HTTP_KEYS = "header:NAME, path:N (the Nth path segment, from 1) or query:NAME"
DEFAULT_EJECT_FOR = 30.0


@dataclass(frozen=True)
class ShardSpec:
    name: str  # the ring is built from names: named shards keep their keys when moved
    target: url.UrlTargetSpec

    @property
    def written(self) -> str:
        return self.target.written


@dataclass(frozen=True)
class ShardsTargetSpec(TargetSpec):
    KIND = "shards"
    shards: tuple[ShardSpec, ...] = ()
    key: str = "redis"  # redis | header:NAME | path:N | query:NAME
    eject_after: int = 0  # consecutive failures that eject a shard; 0: never
    eject_for: float = DEFAULT_EJECT_FOR
    default: str | None = None  # HTTP: the shard for requests without the key
    auth: str | None = field(default=None, repr=False)  # Redis: password sent to each shard

    def describe(self) -> str:
        return f"{len(self.shards)} shards by {self.key}: " + ", ".join(
            s.written for s in self.shards
        )


def parse(name: str, node: Node, protocol: str) -> ShardsTargetSpec | None:
    """`{shards: [URL, …] | {NAME: URL, …}, key: …, eject_after: N, eject_for: 30s, …}`."""
    if not isinstance(node.value, dict):
        node.mapping(KEYS)  # reports what it is instead
        return None
    before = len(node.reader.problems)
    node.mapping(KEYS, required=("shards", "key"))  # the rest is checked even when one is missing
    shards = _shards(node.child("shards"), protocol) if node.has("shards") else None
    key = _key(node.child("key"), protocol) if node.has("key") else None
    eject_after, eject_for = 0, DEFAULT_EJECT_FOR
    if node.has("eject_after"):
        eject_after = node.child("eject_after").integer(low=1, high=1_000_000) or 0
    if node.has("eject_for"):
        if not node.has("eject_after"):
            node.child("eject_for").problem("eject_for needs eject_after (ejection is off)",
                                            key=True)
        eject_for = node.child("eject_for").duration() or DEFAULT_EJECT_FOR
    default = None
    if node.has("default"):
        d = node.child("default")
        if protocol != "http":
            d.problem("default applies to http services (a Redis command without a key is "
                      "answered by devamb or refused)", key=True)
        elif shards is not None:
            default = d.one_of([s.name for s in shards])
    auth = None
    if node.has("auth"):
        if protocol != "tcp":
            node.child("auth").problem("auth applies to key: redis shards", key=True)
        else:
            value = node.child("auth")
            if isinstance(value.value, int) and not isinstance(value.value, bool):
                value.value = str(value.value)
            auth = value.string()
    if len(node.reader.problems) > before or shards is None or key is None:
        return None
    return ShardsTargetSpec(name, shards, key, eject_after, eject_for, default, auth)


def _shards(node: Node, protocol: str) -> tuple[ShardSpec, ...] | None:
    entries: list[tuple[str | None, Node]]
    if isinstance(node.value, list):
        entries = [(None, item) for item in node.elements()]
    elif isinstance(node.value, dict):
        entries = [(str(k), item) for k, item in node.items()]
    else:
        node.problem(f"expected a list of URLs or a mapping of names to URLs, got "
                     f"{type_name(node.value)}")
        return None
    if not entries:
        node.problem("expected at least one shard")
        return None
    out: list[ShardSpec] = []
    seen: dict[str, Node] = {}
    ok = True
    for given, item in entries:
        spec = url.parse(given or str(item.path[-1]), item, protocol)
        if spec is None:
            ok = False
            continue
        parts = urlsplit(spec.url)
        name = given or (parts.netloc.rpartition("@")[2] + parts.path.rstrip("/"))
        if name in seen:
            item.problem(f"shard {name} is listed twice")
            ok = False
            continue
        seen[name] = item
        out.append(ShardSpec(name, dataclasses.replace(spec, name=name)))
    return tuple(out) if ok else None


def _key(node: Node, protocol: str) -> str | None:
    text = node.string(interpolate=False)
    if text is None:
        return None
    if protocol == "tcp":
        if text != "redis":
            node.problem(f"{text!r} is not a shard key for a tcp service: expected redis "
                         "(RESP-aware, like twemproxy)")
            return None
        return text
    kind, _, arg = text.partition(":")
    if (kind in ("header", "query") and arg) or (kind == "path" and arg.isdigit() and int(arg)):
        return text
    node.problem(f"{text!r} is not a shard key for an http service: expected {HTTP_KEYS}")
    return None
