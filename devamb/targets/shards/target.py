"""Sharded targets, running: each key goes to one shard of a ketama ring, for HTTP and for
Redis (RESP).

HTTP services pick the key from a header, a path segment or a query parameter and forward the
request to that shard. TCP services with `key: redis` terminate RESP like twemproxy: commands are
parsed, routed by key (hash tags honoured), multi-key commands fanned out, and replies written
back in the client's order (see devamb.resp). A shard failing `eject_after` times in a row
leaves the ring for `eject_for` (ring.py); its keys rehash to the others meanwhile. The profile
side (ShardsTargetSpec, parse) is in spec.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from devamb.profile.schema import TargetSpec
from devamb.proxy.errors import UpstreamFailed
from devamb.proxy.h2request import H2Request
from devamb.resp.commands import hashed_part
from devamb.targets import url
from devamb.targets.base import (
    ClientReader,
    ClientStream,
    H2Destination,
    Target,
    TargetContext,
    TargetUnavailable,
)
from devamb.targets.shards.link import ShardLink
from devamb.targets.shards.parser import BRACE
from devamb.targets.shards.ring import ShardRing
from devamb.targets.shards.session import NoShard, Outbox, Session
from devamb.targets.shards.spec import ShardsTargetSpec

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

M = TypeVar("M")


def build(spec: TargetSpec, context: TargetContext) -> Target:
    if context.protocol == "tcp":
        return RedisShardsTarget(spec, context)
    return HttpShardsTarget(spec, context)


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

    def key_of(self, request: FrontRequest | H2Request) -> str | None:
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

    def _shard_of(self, key: str | None) -> url.UrlTarget | None:
        """The shard a request with `key` goes to, counted (None: no key and no default)."""
        if key is not None:
            try:
                shard = self._ring.pick(key.encode())
            except NoShard as exc:
                raise TargetUnavailable(str(exc)) from None
        elif self.spec.default is not None:
            shard = self._shards[self.spec.default]
        else:
            return None
        self._requests[shard.spec.name] += 1
        return shard

    def _missing(self) -> str:
        kind, arg = self._key_kind, self._key_arg
        what = {
            "header": f"header {arg}",
            "query": f"query parameter {arg}",
            "path": f"path segment {arg}",
        }[kind]
        return f"the request has no {what}, which picks its shard (key: {self.spec.key})"

    async def h2_destination(self, headers: H2Headers) -> H2Destination:
        """The shard of this call's key (a shard's errors are not counted: the HTTP/2
        listener does not report outcomes back yet)."""
        shard = self._shard_of(self.key_of(H2Request(headers)))
        if shard is None:
            raise TargetUnavailable(self._missing(), 400)
        return await shard.h2_destination(headers)

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        shard = self._shard_of(self.key_of(request))
        if shard is None:
            raise UpstreamFailed(400, "missing-shard-key", self._missing())
        name = shard.spec.name
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
        self._links = {shard.name: self._new_link(shard.name, 2) for shard in self.spec.shards}
        # RESP3 links, opened when a client that said HELLO 3 first needs one: each shard answers
        # that client in RESP3 itself, so no reply is re-encoded. The ring's members are the
        # RESP2 links; a RESP3 link goes with its shard's.
        self._links3: dict[str, ShardLink] = {}
        self._ring = self._make_ring(self._links)

    def _new_link(self, name: str, protocol: int) -> ShardLink:
        shard = next(s for s in self.spec.shards if s.name == name)
        parts = urlsplit(shard.target.url)
        link = ShardLink(
            name,
            shard.written,
            parts.hostname or "",
            parts.port or 0,
            self,
            timeout=self.context.timeout,
            auth=self.auth,
            protocol=protocol,
        )
        link.dial = self.context.dial_via(shard.target.via)  # `via:` a bastion
        return link

    @property
    def ring(self) -> ShardRing[ShardLink]:
        return self._ring

    def _both(self, name: str) -> list[ShardLink]:
        link3 = self._links3.get(name)
        return [self._links[name]] if link3 is None else [self._links[name], link3]

    def _counts(self, name: str) -> tuple[int, int]:
        links = self._both(name)
        return sum(link.commands for link in links), sum(link.errors for link in links)

    def details(self) -> dict[str, Any]:
        out = super().details()
        for shard in out["shards"]:
            links = self._both(shard["name"])
            shard["connected"] = links[0].connected
            if len(links) > 1:  # a RESP3 client used this shard: its own connection
                shard["resp3_connected"] = links[1].connected
            errors = [link.auth_error for link in links if link.auth_error]
            if errors:
                shard["auth_error"] = errors[0]
        return out

    # -- the session's router ----------------------------------------------------------------

    def link_for(self, key: bytes) -> ShardLink:
        if BRACE in key:
            key = hashed_part(key)
        return self._ring.pick(key)

    def links(self) -> list[ShardLink]:
        return self._ring.live()

    def resp3(self, link: ShardLink) -> ShardLink:
        """The RESP3 link to the shard of `link` (a RESP2 link, as the ring picks them)."""
        link3 = self._links3.get(link.name)
        if link3 is None:
            link3 = self._links3[link.name] = self._new_link(link.name, 3)
        return link3

    # -- the links' watcher ------------------------------------------------------------------

    def link_failed(self, link: ShardLink, reason: str) -> None:
        self._ring.failed(link.name, reason)

    def link_ok(self, link: ShardLink) -> None:
        self._ring.ok(link.name)

    def flush(self) -> None:
        self._outbox.flush()

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        for link in [*self._links.values(), *self._links3.values()]:
            link.close()
        await asyncio.sleep(0)

    async def serve_tcp(
        self, reader: ClientReader, client: ClientStream, exchange: Exchange
    ) -> None:
        exchange.url = ", ".join(self._written.values())
        await Session(self, client, self._outbox).serve(reader)
