"""An endpoint: one upstream address inside a target, and what the policies know about it.

Balancing, health checks and outlier ejection share this record; a target owns the list
(`EndpointSet`) and decides where endpoints come from (a profile list, Docker containers, DNS).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from devamb.cluster.reachability import Reachability
from devamb.proxy.dial import Dial
from devamb.proxy.upstream import UpstreamPool

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(`url` without its `user:password@`, the `Authorization: Basic` value it stands for).

    Credentials in a URL are for the upstream, as curl and browsers treat them: they never
    belong in the Host header or in the URL devamb records."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


@dataclass(eq=False)
class Endpoint:
    """One concrete upstream: where it is, its connections, and its health/ejection state."""

    scheme: str  # http | https | tcp
    host: str  # as written: a name or an address
    port: int
    prefix: str = ""  # a path prefix for HTTP requests ("" for none)
    written: str = ""  # for status and errors; never holds secrets
    origin: str = ""  # where it came from: "profile", a container id, ...
    address: tuple[str, int] | None = None  # the resolved address to connect to, if pinned
    pool: UpstreamPool | None = None  # HTTP keep-alive connections, made by the owner
    health: str = "unknown"  # unknown | healthy | unhealthy (active health checks)
    health_reason: str | None = None  # why the last check failed
    health_passes: int = 0  # consecutive passed checks
    health_fails: int = 0  # consecutive failed checks
    ejected_until: float = 0.0  # monotonic time it returns; 0 when not ejected
    ejections: int = 0
    consecutive_failures: int = 0  # exchanges in a row that failed (outlier detection)
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    authorization: str | None = None  # from user:password@ in the URL; a secret
    dial: Dial | None = None  # through a bastion (the pool's `via:`); None: directly
    #: what the last connection to it found (an exchange's, a health check's or a probe's)
    reach: Reachability = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reach = Reachability(self.host, self.port)

    @classmethod
    def from_url(cls, url: str, written: str = "", origin: str = "profile") -> Endpoint:
        clean, authorization = split_userinfo(url)
        parts = urlsplit(clean)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
        return cls(
            parts.scheme, parts.hostname or "", port, parts.path.rstrip("/"),
            written or clean, origin, authorization=authorization,
        )

    def request_headers(self, extra: Mapping[str, str]) -> Mapping[str, str]:
        """The target's extra headers, plus this endpoint's credentials (which win)."""
        if self.authorization is None:
            return extra
        return {**extra, "Authorization": self.authorization}

    @property
    def key(self) -> str:
        """A stable name: the hash ring's node name and the endpoint's name in status."""
        return self.written or str(self)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def origin_url(self) -> str:
        """scheme://host[:port], as the Host header and exchange URLs name it."""
        if self.port == DEFAULT_PORTS.get(self.scheme):
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{self}"

    @property
    def ejected(self) -> bool:
        return self.ejected_until > 0

    @property
    def routable(self) -> bool:
        return self.health != "unhealthy" and not self.ejected

    def connect_address(self) -> tuple[str, int]:
        return self.address or (self.host, self.port)

    @property
    def state(self) -> str:
        if self.ejected:
            return "ejected"
        return self.health

    @property
    def condition(self) -> str:
        """`down` (not routable, or its last connection failed), `unknown` (routable, never
        connected to) or `up`: what the pool's state is made of."""
        if not self.routable or self.reach.failing:
            return "down"
        return "unknown" if self.reach.state == "unknown" else "up"

    def to_json(self, now: float, total_requests: int) -> dict[str, Any]:
        host, port = self.connect_address()
        return {
            "endpoint": self.key,
            "address": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "state": self.state,
            "health": self.health,
            "health_reason": self.health_reason,
            "ejected": self.ejected,
            "ejected_for_s": round(max(0.0, self.ejected_until - now), 1) if self.ejected else None,
            "ejections": self.ejections,
            "routable": self.routable,
            "reach": self.reach.to_json(),
            "in_flight": self.in_flight,
            "requests": self.requests,
            "failures": self.failures,
            "share": round(self.requests / total_requests, 4) if total_requests else 0.0,
        }


class EndpointSet:
    """A target's endpoints; the routable ones are cached until something calls `changed`."""

    def __init__(self, endpoints: Iterable[Endpoint] = ()) -> None:
        self.items: tuple[Endpoint, ...] = tuple(endpoints)
        self._routable: tuple[Endpoint, ...] | None = None

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def changed(self) -> None:
        self._routable = None

    def routable(self) -> tuple[Endpoint, ...]:
        if self._routable is None:
            self._routable = tuple(e for e in self.items if e.routable)
        return self._routable

    def replace(self, endpoints: Sequence[Endpoint]) -> tuple[list[Endpoint], list[Endpoint]]:
        """Swap the list, keeping the state of endpoints with the same key; (added, removed)."""
        old = {e.key: e for e in self.items}
        kept = [old.pop(e.key, e) for e in endpoints]
        added = [e for e in kept if e in endpoints]
        self.items = tuple(kept)
        self.changed()
        return added, list(old.values())

    def why_none(self, target: str) -> str:
        """The 503 reason when nothing is routable."""
        if not self.items:
            return f"target {target!r} has no endpoints"
        ejected = sum(1 for e in self.items if e.ejected)
        failing = sum(1 for e in self.items if not e.ejected and e.health == "unhealthy")
        parts = [f"{ejected} ejected"] if ejected else []
        if failing:
            parts.append(f"{failing} failing health checks")
        return f"no healthy endpoint in target {target!r} ({', '.join(parts)})"

    @property
    def total_requests(self) -> int:
        return sum(e.requests for e in self.items)
