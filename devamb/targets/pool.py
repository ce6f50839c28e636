"""Pool targets: `endpoints: [URL, ...]`, balanced, health-checked, with outliers ejected.

```yaml
replicas:
  endpoints: [http://127.0.0.1:8001, http://127.0.0.1:8002]
  balance: least_requests          # round_robin | least_requests | random | hash
  hash_on: header:X-User-Id        # balance: hash only; header:NAME, cookie:NAME, client_ip, path
  health: {path: /healthz, interval: 5s, timeout: 1s, healthy: 2, unhealthy: 3}
  outlier: {consecutive_failures: 5, eject_for: 30s, max_ejected: 50%}
  dns_ttl: 30s                     # host names are re-resolved this often
```
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yarl import URL

from devamb.cluster.balance import BalanceSpec, make_balancer, parse_balance
from devamb.cluster.dns import DnsRefresher, PinnedPool
from devamb.cluster.endpoint import Endpoint, EndpointSet
from devamb.cluster.health import HealthChecker, HealthSpec, parse_health
from devamb.cluster.outlier import OutlierDetector, OutlierSpec, parse_outlier
from devamb.profile.reader import Node
from devamb.profile.schema import TargetSpec
from devamb.proxy.deadline import ClientStalled
from devamb.proxy.dial import Dial
from devamb.proxy.errors import RetryableStatus, UpstreamFailed
from devamb.proxy.forward import forward_http
from devamb.proxy.h2request import H2Request
from devamb.proxy.h2upstream import h2_tls
from devamb.proxy.upstream import UpstreamPool, tls_context
from devamb.proxy.websocket_client import WebSocketClient
from devamb.targets import url
from devamb.targets.base import H2Destination, Target, TargetContext, TargetUnavailable

if TYPE_CHECKING:
    from devamb.cluster.request_key import KeyedRequest
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

KEYS = (
    "endpoints", "balance", "hash_on", "health", "outlier", "dns_ttl", "headers", "tls", "via",
)
DEFAULT_DNS_TTL = 30.0
FIRST_RESOLVE_WAIT = 2.0  # seconds start() waits for the first DNS answers


@dataclass(frozen=True)
class PoolTargetSpec(TargetSpec):
    KIND = "endpoints"
    endpoints: tuple[tuple[str, str], ...] = ()  # (url, as written) per endpoint
    balance: BalanceSpec = field(default_factory=BalanceSpec)
    health: HealthSpec | None = None
    outlier: OutlierSpec | None = None
    dns_ttl: float = DEFAULT_DNS_TTL
    headers: Mapping[str, str] = field(default_factory=dict)
    tls_verify: bool = True
    tls_ca: str | None = None
    via: str | None = None  # a bastion every endpoint is reached through (checked by assembly)

    def describe(self) -> str:
        listed = ", ".join(written for _, written in self.endpoints)
        via = f" via {self.via}" if self.via else ""
        return f"{listed} ({self.balance.policy}){via}"


def parse(name: str, node: Node, protocol: str) -> PoolTargetSpec | None:
    if not isinstance(node.value, dict):
        node.mapping(KEYS)  # reports what it is instead
        return None
    before = len(node.reader.problems)
    node.mapping(KEYS, required=("endpoints",))
    endpoints = _endpoints(name, node.child("endpoints"), protocol)
    balance = parse_balance(node, protocol)
    health = parse_health(node.child("health"), protocol) if node.has("health") else None
    outlier = None
    if node.has("outlier"):
        if protocol != "http":  # the TCP and HTTP/2 listeners do not report outcomes yet
            node.child("outlier").problem(
                f"outlier ejection needs HTTP exchanges; a {protocol} pool uses "
                "health: {interval: ...}",
                key=True,
            )
        else:
            outlier = parse_outlier(node.child("outlier"))
    ttl = node.child("dns_ttl").duration() if node.has("dns_ttl") else DEFAULT_DNS_TTL
    if ttl is not None and ttl <= 0:
        node.child("dns_ttl").problem("dns_ttl must be more than 0")
    headers: dict[str, str] = {}
    verify, ca = True, None
    if node.has("headers"):
        if protocol == "tcp":
            node.child("headers").problem("headers apply to http, http2 and grpc services only")
        headers = node.child("headers").string_map() or {}
    if node.has("tls"):
        tls = node.child("tls")
        verify, ca = url.parse_tls(tls)
        if not any(u.startswith("https:") for u, _ in endpoints):
            tls.problem("tls settings apply to https:// endpoints only")
    via = node.child("via").string(interpolate=False) if node.has("via") else None
    if len(node.reader.problems) > before or balance is None:
        return None
    return PoolTargetSpec(
        name, tuple(endpoints), balance, health, outlier, ttl or DEFAULT_DNS_TTL,
        headers, verify, ca, via,
    )


def _endpoints(name: str, node: Node, protocol: str) -> list[tuple[str, str]]:
    if not isinstance(node.value, list) or not node.value:
        node.problem("expected a list of endpoint URLs, with at least one")
        return []
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for element in node.elements():
        if not isinstance(element.value, str):
            element.problem("expected an endpoint URL")
            continue
        spec = url.parse(name, element, protocol)
        if spec is None:
            continue
        if spec.url in seen:
            element.problem(f"{spec.written!r} is listed twice")
            continue
        seen.add(spec.url)
        out.append((spec.url, spec.written))
    return out


class PoolTarget(Target):
    """Routes each exchange to one routable endpoint, chosen by the balancing policy."""

    spec: PoolTargetSpec

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, PoolTargetSpec)
        self.endpoints = EndpointSet(Endpoint.from_url(u, w) for u, w in spec.endpoints)
        self.balancer = make_balancer(spec.balance)
        self.outlier = (
            OutlierDetector(spec.outlier, self.endpoints, self._outlier_changed)
            if spec.outlier is not None else None
        )
        self._ssl = self._ssl_context()
        self.health = (
            HealthChecker(spec.health, self._health_changed, self._ssl)
            if spec.health is not None else None
        )
        self.dns = DnsRefresher(
            spec.dns_ttl, lambda: self.endpoints.items, self._address_changed, self._dns_failed
        )
        self._http = context.protocol == "http"
        self._websockets = WebSocketClient(self._ssl)
        self._dial: Dial | None = None  # through a bastion (`via:`), set at start
        self._h2_tls: ssl.SSLContext | None = None  # made at the first HTTP/2 call over TLS

    @property
    def _prefix(self) -> str:
        return f"{self.context.service}/{self.name}: "

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not any(u.startswith("https:") for u, _ in self.spec.endpoints):
            return None
        return tls_context(self.spec.tls_ca, self.spec.tls_verify)

    # -- status ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """From the endpoints, in a split's words: `unavailable` (none routable: health checks
        or ejection took them all out), the connect failure of the routable ones when all of
        them failed (`refused`, `dns-failure`, ... or `unreachable` when they differ),
        `degraded` (some cannot take traffic), `unknown` (some were never connected to) or
        `ready` (every endpoint routable and reachable)."""
        if self.outlier is not None:
            self.outlier.expire()
        routable = self.endpoints.routable()
        if not routable:
            return "unavailable"
        conditions = {e.condition for e in self.endpoints}
        if conditions == {"down"}:
            failures = {e.reach.state for e in routable}
            return failures.pop() if len(failures) == 1 else "unreachable"
        if "down" in conditions:
            return "degraded"
        return "unknown" if "unknown" in conditions else "ready"

    def details(self) -> dict[str, Any]:
        if self.outlier is not None:
            self.outlier.expire()
        now = self.outlier.clock() if self.outlier is not None else 0.0
        total = self.endpoints.total_requests
        spec = self.spec
        routable = self.endpoints.routable()
        return {
            "balance": spec.balance.policy,
            "hash_on": str(spec.balance.hash_on) if spec.balance.hash_on else None,
            "health": None if spec.health is None else {
                "path": spec.health.path, "interval_s": spec.health.interval,
                "timeout_s": spec.health.timeout, "healthy": spec.health.healthy,
                "unhealthy": spec.health.unhealthy,
            },
            "outlier": None if spec.outlier is None else {
                "consecutive_failures": spec.outlier.consecutive_failures,
                "eject_for_s": spec.outlier.eject_for,
                "max_ejected": spec.outlier.max_ejected,
            },
            "routable": len(routable),
            "endpoints": [e.to_json(now, total) for e in self.endpoints],
            "reason": None if routable else self.endpoints.why_none(self.name),
        }

    def refresh(self) -> asyncio.Task[None] | None:
        """Status is being read: probe the endpoints not known to be reachable (rate-limited
        per endpoint); a task to wait for while some are still unknown."""
        first: list[asyncio.Task[None]] = []
        for endpoint in self.endpoints:
            reach = endpoint.reach
            if reach.state == "reachable":
                continue
            probe = reach.probe()
            if probe is not None and reach.state == "unknown":
                first.append(probe)
        if not first:
            return None
        return asyncio.get_running_loop().create_task(_all(first))

    def tcp_outcome(
        self, address: tuple[str, int], failure: str | None, error: BaseException | None = None
    ) -> None:
        """A relayed connection to an endpoint opened (failure None) or failed."""
        for endpoint in self.endpoints:
            if endpoint.connect_address() == address:
                if failure is not None and (error is None or isinstance(error, TimeoutError)):
                    # the relay's own words ("no connection within 10s") over an empty timeout
                    error = (
                        TimeoutError(failure) if isinstance(error, TimeoutError)
                        else OSError(failure)
                    )
                endpoint.reach.observe(None if failure is None else error)
                return

    def injected_headers(self) -> Mapping[str, str]:
        return self.spec.headers

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._dial = self.context.dial_via(self.spec.via)
        self._websockets.dial = self._dial
        if self._dial is not None:  # names resolve on the bastion's side, as ssh -L does
            self._start_endpoints()
            if self.health is not None:
                self.health.watch(self.endpoints)
            return
        if self.dns.named():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_RESOLVE_WAIT):
                    await self.dns.refresh()
        self._start_endpoints()
        self.dns.start()
        if self.health is not None:
            self.health.watch(self.endpoints)

    async def close(self) -> None:
        if self.health is not None:
            await self.health.close()
        await self.dns.close()
        if self.outlier is not None:
            self.outlier.close()
        for endpoint in self.endpoints:
            if endpoint.pool is not None:
                endpoint.pool.close()
                endpoint.pool = None
            await endpoint.reach.close()
        await self._websockets.close()

    def _start_endpoints(self) -> None:
        for endpoint in self.endpoints:
            endpoint.reach.ssl = self._ssl if endpoint.scheme == "https" else None
            endpoint.reach.pinned = endpoint.address
            endpoint.reach.dial = endpoint.dial = self._dial
            if self._http and endpoint.pool is None:
                endpoint.pool = self._make_pool(endpoint)

    def _make_pool(self, endpoint: Endpoint) -> UpstreamPool:
        tls = self._ssl if endpoint.scheme == "https" else None
        pool = (
            PinnedPool(endpoint.host, endpoint.address, tls)
            if endpoint.address is not None
            else UpstreamPool(endpoint.host, endpoint.port, tls, self._dial)
        )
        pool.observer = endpoint.reach.observe  # each new connection's outcome, not each request
        return pool

    # -- what the policies report ------------------------------------------------------------

    def _left(self) -> str:
        return f"{len(self.endpoints.routable())} of {len(self.endpoints)} endpoints routable"

    def _health_changed(self, endpoint: Endpoint) -> None:
        self.endpoints.changed()
        if endpoint.health == "unhealthy":
            self.notify(
                "warning",
                f"{self._prefix}{endpoint.key} fails health checks ({endpoint.health_reason}); "
                f"{self._left()}",
            )
        elif endpoint.health_fails == 0 and endpoint.health_passes > 1:
            self.notify("info", f"{self._prefix}{endpoint.key} passes health checks again")

    def _outlier_changed(self, endpoint: Endpoint) -> None:
        if endpoint.ejected:
            assert self.outlier is not None
            spec = self.outlier.spec
            self.notify(
                "warning",
                f"{self._prefix}ejected {endpoint.key} for {spec.eject_for:g}s after "
                f"{spec.consecutive_failures} failures in a row; {self._left()}",
            )
        else:
            self.notify("info", f"{self._prefix}{endpoint.key} is back after its ejection")

    def _address_changed(self, endpoint: Endpoint, old: tuple[str, int] | None) -> None:
        endpoint.reach.pinned = endpoint.address
        if endpoint.pool is not None:
            previous = endpoint.pool
            endpoint.pool = self._make_pool(endpoint)
            if isinstance(previous, PinnedPool):
                previous.retire()
            else:
                previous.close()
        if old is not None and endpoint.address is not None:
            self.notify(
                "info",
                f"{self._prefix}{endpoint.host} now resolves to {endpoint.address[0]} "
                f"(was {old[0]})",
            )

    def _dns_failed(self, endpoint: Endpoint, reason: str) -> None:
        kept = f"; keeping {endpoint.address[0]}" if endpoint.address else ""
        self.notify("warning", f"{self._prefix}cannot resolve {endpoint.host}: {reason}{kept}")

    # -- routing ---------------------------------------------------------------------------

    def choose(self, request: KeyedRequest | None, tried: set[str] | None = None) -> Endpoint:
        """The endpoint for the next exchange; TargetUnavailable (503) when none is routable.

        A retry (`tried` names the endpoints earlier tries used) goes to another routable
        endpoint while there is one; with `hash`, that is the key's next one on the ring.
        """
        if self.outlier is not None:
            self.outlier.expire()
        candidates = self.endpoints.routable()
        if not candidates:
            raise TargetUnavailable(self.endpoints.why_none(self.name), 503)
        if tried:
            untried = tuple(e for e in candidates if e.key not in tried)
            if untried:
                candidates = untried
        return self.balancer.pick(candidates, request)

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        limits = exchange.limits
        tried = limits.tried if limits is not None else None
        endpoint = self.choose(request, tried)
        if tried is not None:
            tried.add(endpoint.key)
        pool = endpoint.pool
        assert pool is not None, "target not started"
        endpoint.requests += 1
        endpoint.in_flight += 1
        try:
            response = await forward_http(
                pool,
                request,
                URL(f"{endpoint.origin_url}{endpoint.prefix}{request.raw_path}", encoded=True),
                exchange,
                extra_headers=endpoint.request_headers(self.spec.headers),
                keep_host=self.context.keep_host,
                timeout=self.context.timeout,
                websockets=self._websockets,
            )
        except ClientStalled:
            raise  # the client paused its upload: no fault of the endpoint's
        except UpstreamFailed:
            self._count(endpoint, None)
            raise
        except RetryableStatus as exc:  # the service's retries try again; the answer counts
            self._count(endpoint, exc.status)
            raise
        finally:
            endpoint.in_flight -= 1
        self._count(endpoint, response.status)
        return response

    def _count(self, endpoint: Endpoint, status: int | None) -> None:
        """One exchange's outcome: None when no answer came (connect failure, timeout, ...)."""
        if status is None or status >= 500:
            endpoint.failures += 1
        if self.outlier is not None:
            if status is None:
                self.outlier.failure(endpoint)
            else:
                self.outlier.outcome(endpoint, status)

    async def h2_destination(self, headers: H2Headers) -> H2Destination:
        """An endpoint per call (several calls on one client connection spread over them)."""
        endpoint = self.choose(H2Request(headers))
        endpoint.requests += 1
        host, port = endpoint.connect_address()
        tls = None
        if endpoint.scheme == "https":
            if self._h2_tls is None:
                self._h2_tls = h2_tls(self.spec.tls_ca, self.spec.tls_verify)
            tls = self._h2_tls
        return H2Destination(
            host, port, endpoint.origin_url.split("://", 1)[1], tls=tls,
            server_hostname=endpoint.host if tls is not None else None,
            headers=endpoint.request_headers(self.spec.headers),
            via=self.spec.via, dial=self._dial,
        )

    async def tcp_address(self) -> tuple[str, int]:
        endpoint = self.choose(None)
        endpoint.requests += 1
        return endpoint.connect_address()

    def dial(self) -> Dial | None:
        return self._dial


async def _all(probes: list[asyncio.Task[None]]) -> None:
    await asyncio.wait(probes)
