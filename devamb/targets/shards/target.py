"""Sharded targets: each key goes to one shard of a ketama ring, for HTTP and for Redis (RESP).

HTTP services pick the key from a header, a path segment or a query parameter and forward the
request to that shard. TCP services with `key: redis` terminate RESP like twemproxy: commands are
parsed, routed by key (hash tags honoured), multi-key commands fanned out, and replies written
back in the client's order (see devamb.resp). A shard failing `eject_after` times in a row
leaves the ring for `eject_for`; its keys rehash to the others meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from devamb.cluster.hashring import HashRing
from devamb.profile.reader import Node, type_name
from devamb.profile.schema import TargetSpec
from devamb.proxy.errors import UpstreamFailed
from devamb.targets import url
from devamb.targets.base import (
    ClientReader,
    ClientStream,
    Target,
    TargetContext,
    TargetUnavailable,
)
from devamb.targets.shards.commands import hashed_part
from devamb.targets.shards.link import ShardLink
from devamb.targets.shards.session import NoShard, Outbox, Session

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

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


# -- profile ---------------------------------------------------------------------------------


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


def build(spec: TargetSpec, context: TargetContext) -> Target:
    if context.protocol == "tcp":
        return RedisShardsTarget(spec, context)
    return HttpShardsTarget(spec, context)


# -- the ring, with ejection -----------------------------------------------------------------

M = TypeVar("M")

try:  # CPython's own MD5 costs half of OpenSSL 3's per call; HashRing's key_hash, made faster
    from _md5 import md5 as _md5  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    _md5 = hashlib.md5


class ShardRing(Generic[M]):
    """Shards on a ketama ring; one failing `eject_after` times in a row leaves for `eject_for`."""

    def __init__(
        self,
        members: Mapping[str, M],
        *,
        eject_after: int,
        eject_for: float,
        notify: Callable[[str, str], None],
        describe: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.members = dict(members)
        self.eject_after = eject_after
        self.eject_for = eject_for
        self._notify = notify
        self._describe = describe  # "shard a (tcp://…)"
        self._clock = clock
        self._full = HashRing(list(self.members))
        self._hashes: list[int] = []  # the ring's points, and the member owning each
        self._owners: list[M] = []
        self.failures: Counter[str] = Counter()  # consecutive, by shard
        self.last_error: dict[str, str] = {}
        self.ejected: dict[str, float] = {}  # shard -> clock time it returns
        self._next_return = float("inf")
        self._rebuild()

    def pick(self, key: bytes) -> M:
        """The member owning `key`: `HashRing.node_for(key)`, at a fraction of its cost."""
        if self.ejected:
            if self._clock() >= self._next_return:
                self._restore()
            if not self._owners:
                soonest = max(min(self.ejected.values()) - self._clock(), 0)
                raise NoShard(f"every shard is ejected; the first returns in {soonest:.0f}s")
        point = int.from_bytes(_md5(key).digest()[:4], "little")
        owners = self._owners
        return owners[bisect.bisect_left(self._hashes, point) % len(owners)]

    def live(self) -> list[M]:
        if self.ejected and self._clock() >= self._next_return:
            self._restore()
        return [m for name, m in self.members.items() if name not in self.ejected]

    def failed(self, name: str, reason: str) -> None:
        self.failures[name] += 1
        self.last_error[name] = reason
        if not self.eject_after or self.failures[name] < self.eject_after:
            return
        if name in self.ejected:
            return
        self.ejected[name] = self._clock() + self.eject_for
        self._rebuild()
        self._notify(
            "warning",
            f"{self._describe(name)} ejected for {self.eject_for:g}s after "
            f"{self.failures[name]} failures in a row ({reason}); its keys go to the other shards",
        )

    def ok(self, name: str) -> None:
        if self.failures[name]:
            self.failures[name] = 0

    def state(self, name: str) -> str:
        if name in self.ejected:
            return "ejected"
        return "failing" if self.failures[name] else "up"

    def returns_in(self, name: str) -> float | None:
        until = self.ejected.get(name)
        return None if until is None else max(until - self._clock(), 0.0)

    def _restore(self) -> None:
        now = self._clock()
        back = [name for name, until in self.ejected.items() if until <= now]
        for name in back:
            del self.ejected[name]
            self.failures[name] = 0
        self._rebuild()
        for name in back:
            self._notify("info", f"{self._describe(name)} is back on the ring")

    def _rebuild(self) -> None:
        ring = self._full.without(set(self.ejected)) if self.ejected else self._full
        if ring is None:
            self._hashes, self._owners = [], []
        else:  # HashRing's own tables: node_for is bisect_left over _hashes into _owners
            self._hashes = ring._hashes
            self._owners = [self.members[name] for name in ring._owners]
        self._next_return = min(self.ejected.values(), default=float("inf"))


# -- targets ---------------------------------------------------------------------------------


class _ShardsTarget(Target):
    spec: ShardsTargetSpec

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, ShardsTargetSpec)
        self._written = {s.name: s.written for s in spec.shards}

    def _shard_label(self, name: str) -> str:
        return f"{self.context.service}/{self.name}: shard {name} ({self._written[name]})"

    def _make_ring(self, members: Mapping[str, M]) -> ShardRing[M]:
        return ShardRing(
            members,
            eject_after=self.spec.eject_after,
            eject_for=self.spec.eject_for,
            notify=self.notify,
            describe=self._shard_label,
        )

    @property
    def ring(self) -> ShardRing[Any]:
        raise NotImplementedError

    @property
    def state(self) -> str:
        ring = self.ring
        if len(ring.ejected) == len(ring.members):
            return "unavailable"
        return "degraded" if ring.ejected or any(ring.failures.values()) else "ready"

    def _counts(self, name: str) -> tuple[int, int]:
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        ring = self.ring
        counts = {name: self._counts(name) for name in ring.members}
        total = sum(requests for requests, _ in counts.values()) or 1
        shards = []
        for name, (requests, errors) in counts.items():
            returns = ring.returns_in(name)
            shards.append({
                "name": name,
                "address": self._written[name],
                "state": ring.state(name),
                "requests": requests,
                "errors": errors,
                "share": round(requests / total, 4),
                "returns_in_s": None if returns is None else round(returns, 1),
                "last_error": ring.last_error.get(name),
            })
        out: dict[str, Any] = {"key": self.spec.key, "shards": shards}
        if self.spec.eject_after:
            out["eject_after"] = self.spec.eject_after
            out["eject_for_s"] = self.spec.eject_for
        return out


class HttpShardsTarget(_ShardsTarget):
    """Routes each request by its key to one shard, a URL target of its own (keep-alive pool)."""

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        self._shards = {s.name: url.UrlTarget(s.target, context) for s in self.spec.shards}
        self._ring = self._make_ring(self._shards)
        self._requests: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        kind, _, arg = self.spec.key.partition(":")
        self._key_kind = kind
        self._key_arg = arg
        self._segment = int(arg) if kind == "path" else 0

    @property
    def ring(self) -> ShardRing[url.UrlTarget]:
        return self._ring

    def _counts(self, name: str) -> tuple[int, int]:
        return self._requests[name], self._errors[name]

    async def start(self) -> None:
        for shard in self._shards.values():
            await shard.start()

    async def close(self) -> None:
        for shard in self._shards.values():
            await shard.close()

    def key_of(self, request: FrontRequest) -> str | None:
        """The request's shard key, or None when it has none (an empty value counts as none)."""
        kind = self._key_kind
        if kind == "header":
            value = request.headers.get(self._key_arg)
        elif kind == "query":
            value = request.query.get(self._key_arg)
        else:
            segments = [s for s in request.path.split("/") if s]
            value = segments[self._segment - 1] if len(segments) >= self._segment else None
        return value or None

    def _missing(self) -> str:
        kind, arg = self._key_kind, self._key_arg
        what = {
            "header": f"header {arg}",
            "query": f"query parameter {arg}",
            "path": f"path segment {arg}",
        }[kind]
        return f"the request has no {what}, which picks its shard (key: {self.spec.key})"

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        key = self.key_of(request)
        if key is not None:
            try:
                shard = self._ring.pick(key.encode())
            except NoShard as exc:
                raise TargetUnavailable(str(exc)) from None
            name = shard.spec.name
        elif self.spec.default is not None:
            name = self.spec.default
            shard = self._shards[name]
        else:
            raise UpstreamFailed(400, "missing-shard-key", self._missing())
        self._requests[name] += 1
        try:
            response = await shard.handle_http(request, exchange)
        except UpstreamFailed as exc:
            self._errors[name] += 1
            if exc.status in (502, 504):
                self._ring.failed(name, exc.reason)
            raise UpstreamFailed(
                exc.status, exc.code, f"shard {name} ({self._written[name]}): {exc.reason}"
            ) from None
        self._ring.ok(name)
        return response


class RedisShardsTarget(_ShardsTarget):
    """A RESP-aware sharding proxy: one shared pipelined connection per shard (twemproxy-like)."""

    terminates_tcp: ClassVar[bool] = True

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        self.auth = self.spec.auth
        self._outbox = Outbox()
        links = {}
        for shard in self.spec.shards:
            parts = urlsplit(shard.target.url)
            links[shard.name] = ShardLink(
                shard.name,
                shard.written,
                parts.hostname or "",
                parts.port or 0,
                self,
                timeout=context.timeout,
                auth=self.auth,
            )
        self._links = links
        self._ring = self._make_ring(links)

    @property
    def ring(self) -> ShardRing[ShardLink]:
        return self._ring

    def _counts(self, name: str) -> tuple[int, int]:
        link = self._links[name]
        return link.commands, link.errors

    def details(self) -> dict[str, Any]:
        out = super().details()
        for shard in out["shards"]:
            link = self._links[shard["name"]]
            shard["connected"] = link.connected
            if link.auth_error:
                shard["auth_error"] = link.auth_error
        return out

    # -- the session's router ----------------------------------------------------------------

    def link_for(self, key: bytes) -> ShardLink:
        if b"{" in key:
            key = hashed_part(key)
        return self._ring.pick(key)

    def links(self) -> list[ShardLink]:
        return self._ring.live()

    # -- the links' watcher ------------------------------------------------------------------

    def link_failed(self, link: ShardLink, reason: str) -> None:
        self._ring.failed(link.name, reason)

    def link_ok(self, link: ShardLink) -> None:
        self._ring.ok(link.name)

    def flush(self) -> None:
        self._outbox.flush()

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        for link in self._links.values():
            link.close()
        await asyncio.sleep(0)

    async def serve_tcp(
        self, reader: ClientReader, client: ClientStream, exchange: Exchange
    ) -> None:
        exchange.url = ", ".join(self._written.values())
        await Session(self, client, self._outbox).serve(reader)
