"""A TCP service: `tcp_proxy` to a URL, pool or split target; Redis shards as `redis_proxy`."""

from __future__ import annotations

import re
from typing import Any

from devamb.export import upstream
from devamb.export.context import Config, Context, duration
from devamb.export.routes import NOT_MAPPED
from devamb.service.spec import ServiceSpec
from devamb.targets.pool import PoolTargetSpec
from devamb.targets.shards.spec import ShardsTargetSpec
from devamb.targets.split import SplitTargetSpec
from devamb.targets.url import UrlTargetSpec

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
REDIS_PROXY = "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"
REDIS_OPTIONS = ("type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3."
                 "RedisProtocolOptions")
_ONE_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class TcpFilters:
    def __init__(self, ctx: Context, spec: ServiceSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.path = ("services", spec.name)

    def cluster_of(self, name: str) -> str | None:
        cluster_name = f"{self.spec.name}/{name}"
        if cluster_name in self.ctx.clusters:
            return cluster_name
        target = self.spec.targets[name]
        path = (*self.path, "targets", name)
        common: dict[str, Any] = {"connect_timeout": self.spec.connect_timeout or self.spec.timeout,
                  "protocol": "tcp", "path": path}
        if isinstance(target, UrlTargetSpec):
            upstream.cluster(self.ctx, cluster_name,
                             [upstream.address(self.ctx, target.url, path)], **common)
        elif isinstance(target, PoolTargetSpec):
            addresses = [upstream.address(self.ctx, url, (*path, "endpoints", i))
                         for i, (url, _) in enumerate(target.endpoints)]
            config = upstream.cluster(self.ctx, cluster_name, addresses, pool=True,
                                      lb=target.balance.policy, **common)
            if target.health is not None:
                config["health_checks"] = upstream.health_checks(target.health)
            if target.outlier is not None:
                config["outlier_detection"] = upstream.outlier_detection(
                    self.ctx, target.outlier, (*path, "outlier"))
        else:
            return None
        return cluster_name

    def filters(self, chosen: str) -> list[Config] | None:
        target = self.spec.targets[chosen]
        path = (*self.path, "targets", chosen)
        proxy: Config = {"@type": TCP_PROXY, "stat_prefix": self.spec.name}
        if isinstance(target, UrlTargetSpec | PoolTargetSpec):
            proxy["cluster"] = self.cluster_of(chosen)
        elif isinstance(target, SplitTargetSpec):
            members = []
            for member, weight in target.weights:
                cluster = self.cluster_of(member) if weight else None
                if cluster is None and weight:
                    self.ctx.note((*path, "split", member), "member not exported "
                                  f"({self.spec.targets[member].kind} target)")
                elif cluster is not None:
                    members.append({"name": cluster, "weight": weight})
            if not members:
                self.ctx.note(path, "not exported: no member of the split can be exported")
                return None
            proxy["weighted_clusters"] = {"clusters": members}
        elif isinstance(target, ShardsTargetSpec) and target.key == "redis":
            return [self.redis(chosen, target)]
        else:
            why = NOT_MAPPED.get(target.kind, f"{target.kind} targets have no Envoy equivalent")
            self.ctx.note(path, f"not exported: {why}")
            return None
        return [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]

    def redis(self, name: str, target: ShardsTargetSpec) -> Config:
        path = (*self.path, "targets", name)
        cluster_name = f"{self.spec.name}/{name}"
        addresses = [upstream.address(self.ctx, s.target.url, (*path, "shards", s.name))
                     for s in target.shards]
        config = upstream.cluster(self.ctx, cluster_name, addresses, pool=True, lb="hash",
                                  connect_timeout=self.spec.connect_timeout or self.spec.timeout,
                                  protocol="tcp", path=path)
        self.ctx.note((*path, "shards"), "Envoy hashes keys with a ring hash (xxHash), not "
                                         "ketama (MD5): keys land on other shards than with "
                                         "devamb or twemproxy")
        if target.eject_after:
            config["outlier_detection"] = {
                "consecutive_gateway_failure": target.eject_after,
                "enforcing_consecutive_gateway_failure": 100,
                "enforcing_consecutive_5xx": 0,
                "base_ejection_time": duration(target.eject_for),
                "max_ejection_percent": 100,
            }
            self.ctx.note((*path, "eject_after"), "exported as outlier detection: an ejected "
                                                  "shard's keys move to the others, as in devamb")
        proxy: Config = {
            "@type": REDIS_PROXY,
            "stat_prefix": self.spec.name,
            "settings": {"op_timeout": duration(self.spec.timeout)},
            "prefix_routes": {"catch_all_route": {"cluster": cluster_name}},
        }
        written = self.ctx.raw((*path, "auth"))
        if written is not None:
            m = _ONE_VAR.match(str(written))
            if m is None:
                self.ctx.note((*path, "auth"), "not exported: write auth: ${VAR} (Envoy reads "
                                               "the password from its environment)")
            else:
                self.ctx.env_vars.add(m.group(1))
                source = {"environment_variable": m.group(1)}
                proxy["downstream_auth_passwords"] = [source]
                config["typed_extension_protocol_options"] = {
                    "envoy.filters.network.redis_proxy": {
                        "@type": REDIS_OPTIONS, "auth_password": source}}
        return {"name": "envoy.filters.network.redis_proxy", "typed_config": proxy}
