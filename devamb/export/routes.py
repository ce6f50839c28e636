"""An HTTP service's routes: each target kind as an Envoy route action or direct responses."""

from __future__ import annotations

from typing import Any

from devamb.cluster.request_key import RequestKey
from devamb.export import mocks, upstream
from devamb.export.context import Config, Context
from devamb.export.headers import headers_to_add
from devamb.export.policies import breaker_outlier, circuit_breakers, retry_policy, route_timeouts
from devamb.service.spec import ServiceSpec
from devamb.targets.mock.target import MockTargetSpec
from devamb.targets.pool import PoolTargetSpec
from devamb.targets.shards.spec import ShardsTargetSpec
from devamb.targets.split import SplitTargetSpec
from devamb.targets.url import UrlTargetSpec

NOT_MAPPED = {
    "mock": "a mock is exported as its service's own target only (not as a fallback, a split "
            "member or an X-Devamb-Target choice)",
    "echo": "echo is devamb's own test upstream; Envoy has none",
    "docker": "a docker target starts a container on the laptop; in Kubernetes run it as a "
              "Service and point a URL target (or export.hosts) at it",
}


def hash_policy(key: RequestKey) -> Config:
    if key.source == "header":
        return {"header": {"header_name": key.name}}
    if key.source == "cookie":
        return {"cookie": {"name": key.name}}
    if key.source == "client_ip":
        return {"connection_properties": {"source_ip": True}}
    return {"header": {"header_name": ":path"}}


class HttpRoutes:
    """Builds clusters and routes for one http, http2 or grpc service."""

    def __init__(self, ctx: Context, spec: ServiceSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.path = ("services", spec.name)
        self.outlier = breaker_outlier(ctx, spec)
        self.breakers = circuit_breakers(ctx, spec)

    def target_path(self, name: str) -> tuple[str, ...]:
        return (*self.path, "targets", name)

    # -- clusters --------------------------------------------------------------------------

    def cluster_of(self, name: str) -> str | None:
        """The cluster a URL, pool or sharded target is reached through (built once)."""
        cluster_name = f"{self.spec.name}/{name}"
        if cluster_name in self.ctx.clusters:
            return cluster_name
        target = self.spec.targets[name]
        path = self.target_path(name)
        timeout = self.spec.connect_timeout or self.spec.timeout
        common: dict[str, Any] = {
            "connect_timeout": timeout, "protocol": self.spec.protocol, "path": path}
        if isinstance(target, UrlTargetSpec):
            address = upstream.address(self.ctx, target.url, path)
            config = upstream.cluster(self.ctx, cluster_name, [address],
                                      tls=(target.tls_verify, target.tls_ca), **common)
        elif isinstance(target, PoolTargetSpec):
            addresses = [upstream.address(self.ctx, url, (*path, "endpoints", i))
                         for i, (url, _) in enumerate(target.endpoints)]
            config = upstream.cluster(self.ctx, cluster_name, addresses, pool=True,
                                      lb=target.balance.policy,
                                      tls=(target.tls_verify, target.tls_ca), **common)
            if target.health is not None:
                config["health_checks"] = upstream.health_checks(target.health)
            if target.outlier is not None:
                config["outlier_detection"] = upstream.outlier_detection(
                    self.ctx, target.outlier, (*path, "outlier"))
            if target.balance.policy == "hash":
                self.ctx.note((*path, "balance"), "Envoy's ring hash places keys on other "
                                                  "endpoints than devamb's ketama ring")
        elif isinstance(target, ShardsTargetSpec):
            addresses = [upstream.address(self.ctx, s.target.url, (*path, "shards", s.name))
                         for s in target.shards]
            config = upstream.cluster(self.ctx, cluster_name, addresses, pool=True,
                                      lb="hash", tls=(True, None), **common)
            self.ctx.note((*path, "shards"), "Envoy's ring hash places keys on other shards "
                                             "than devamb's ketama ring (built from names)")
        else:
            return None
        if self.outlier is not None and "outlier_detection" not in config:
            config["outlier_detection"] = self.outlier
        if self.breakers is not None:
            config["circuit_breakers"] = self.breakers
        return cluster_name

    # -- routes ----------------------------------------------------------------------------

    def action(self, config: Config) -> Config:
        """Settings every forwarding route of the service carries."""
        config.update(route_timeouts(self.ctx, self.spec))
        policy = retry_policy(self.ctx, self.spec)
        if policy is not None:
            config["retry_policy"] = policy
        if not self.spec.keep_host:
            config["auto_host_rewrite"] = True
        return config

    def forward(self, name: str) -> Config | None:
        """The route (without `match`) that sends requests to target `name`, or None after
        a report line."""
        target = self.spec.targets[name]
        path = self.target_path(name)
        if isinstance(target, UrlTargetSpec | PoolTargetSpec):
            cluster = self.cluster_of(name)
            assert cluster is not None
            action = self.action({"cluster": cluster})
            if isinstance(target, UrlTargetSpec):
                base = upstream.address(self.ctx, target.url, path).path
                if base:
                    action["regex_rewrite"] = {"pattern": {"regex": "^/"},
                                               "substitution": base + "/"}
            elif target.balance.hash_on is not None:
                action["hash_policy"] = [hash_policy(target.balance.hash_on)]
            route: Config = {"route": action}
            added = headers_to_add(self.ctx, (*path, "headers"))
            if added:
                route["request_headers_to_add"] = added
            return route
        if isinstance(target, SplitTargetSpec):
            return self.split(name, target)
        if isinstance(target, ShardsTargetSpec):
            return self.shards(name, target)
        why = NOT_MAPPED.get(target.kind, f"{target.kind} targets have no Envoy equivalent")
        self.ctx.note(path, f"not exported: {why}")
        return None

    def split(self, name: str, target: SplitTargetSpec) -> Config | None:
        path = self.target_path(name)
        members: list[Config] = []
        for member, weight in target.weights:
            if weight == 0:
                continue
            spec = self.spec.targets[member]
            if not isinstance(spec, UrlTargetSpec | PoolTargetSpec):
                self.ctx.note((*path, "split", member), f"member not exported ({spec.kind} "
                                                        f"target); its share goes to the rest")
                continue
            entry: Config = {"name": self.cluster_of(member), "weight": weight}
            added = headers_to_add(self.ctx, (*self.target_path(member), "headers"))
            if added:
                entry["request_headers_to_add"] = added
            if isinstance(spec, UrlTargetSpec) and upstream.address(
                    self.ctx, spec.url, self.target_path(member)).path:
                self.ctx.note((*path, "split", member), "the member URL's path prefix is not "
                                                        "added in a split")
            members.append(entry)
        if not members:
            self.ctx.note(path, "not exported: no member of the split can be exported")
            return None
        action = self.action({"weighted_clusters": {"clusters": members}})
        if target.sticky is not None:
            action["hash_policy"] = [hash_policy(target.sticky)]
            self.ctx.note((*path, "sticky"), "Envoy picks a split member per request: sticky "
                                             "keys choose the endpoint within a member only")
        if target.mirror is not None:
            mirror = self.spec.targets[target.mirror]
            if isinstance(mirror, UrlTargetSpec | PoolTargetSpec):
                action["request_mirror_policies"] = [{"cluster": self.cluster_of(target.mirror)}]
                self.ctx.note((*path, "mirror_max_body"), "Envoy mirrors every request, bodies "
                                                          "of any size")
            else:
                self.ctx.note((*path, "mirror"), f"mirror not exported ({mirror.kind} target)")
        return {"route": action}

    def shards(self, name: str, target: ShardsTargetSpec) -> Config | None:
        path = self.target_path(name)
        kind, _, key = target.key.partition(":")
        if kind == "header":
            policy: Config = {"header": {"header_name": key}}
        elif kind == "query":
            policy = {"query_parameter": {"name": key}}
        else:
            self.ctx.note((*path, "key"), f"not exported: Envoy cannot hash on {target.key}")
            return None
        if target.default is not None:
            self.ctx.note((*path, "default"), "requests without the key go to any shard")
        if target.eject_after:
            self.ctx.note((*path, "eject_after"), "shard ejection is not exported")
        cluster = self.cluster_of(name)
        return {"route": self.action({"cluster": cluster, "hash_policy": [policy]})}

    def routes_for(self, name: str) -> list[Config] | None:
        """Every route target `name` answers with, the catch-all last."""
        target = self.spec.targets[name]
        if isinstance(target, MockTargetSpec):
            path = (*self.target_path(name), "mock")
            routes = mocks.mock_routes(self.ctx, target.mock, path)
            proxy = target.mock.fallback.proxy
            fallback = self.forward(proxy) if proxy is not None else None
            if fallback is None:
                fallback = mocks.fallback_answer(self.ctx, target.mock, path)
            return [*routes, {"match": {"prefix": "/"}, **fallback}]
        route = self.forward(name)
        return None if route is None else [{"match": {"prefix": "/"}, **route}]

    def routes(self, chosen: str) -> list[Config] | None:
        """The service's routes: X-Devamb-Target ones first, then the exported target's."""
        main = self.routes_for(chosen)
        if main is None:
            return None
        routes: list[Config] = []
        if self.spec.target_header:  # the targets that are not exported say so themselves
            for name in self.spec.targets:
                if name == chosen or isinstance(self.spec.targets[name], MockTargetSpec):
                    continue
                route = self.forward(name)
                if route is not None:
                    match = {"prefix": "/", "headers": [
                        {"name": "x-devamb-target", "string_match": {"exact": name}}]}
                    routes.append({"match": match, **route})
        return [*routes, *main]
