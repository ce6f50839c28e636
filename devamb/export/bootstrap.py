"""The Envoy v3 static bootstrap: one listener per service, the clusters, the admin, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from devamb.export.context import Config, Context
from devamb.export.dump import dump
from devamb.export.faults import fault_filters
from devamb.export.load import Loaded, check_output
from devamb.export.report import Report
from devamb.export.routes import HttpRoutes
from devamb.export.tcp import TcpFilters
from devamb.service.spec import ServiceSpec

HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
       "HttpConnectionManager")
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
PROMETHEUS_PATH = "/stats/prometheus"
ADMIN_CLUSTER = "devamb/admin"


@dataclass(frozen=True)
class Options:
    target_set: str | None = None  # the target of this name, in every service that has one
    admin_port: int = 9901
    metrics_port: int = 9902  # 0.0.0.0: Prometheus scrapes /stats/prometheus here


@dataclass(frozen=True)
class EnvoyExport:
    text: str  # the bootstrap YAML
    report: Report
    env_vars: tuple[str, ...]  # variables Envoy reads (header values, Redis auth): secrets
    listeners: tuple[tuple[str, int], ...]  # (service, port) exported


def chosen_target(ctx: Context, spec: ServiceSpec, options: Options) -> str:
    """--target-set, else `export.targets`, else the active target."""
    if options.target_set is not None:
        if options.target_set in spec.targets:
            return options.target_set
        ctx.note(("services", spec.name, "targets"),
                 f"has no target {options.target_set!r}: its "
                 f"{ctx.loaded.profile.export.targets.get(spec.name, spec.target)!r} is exported")
    return ctx.loaded.profile.export.targets.get(spec.name, spec.target)


def _not_exported(ctx: Context, spec: ServiceSpec, chosen: str) -> None:
    """The service's report line, naming the targets export.targets could pick instead."""
    kinds = ("url", "pool", "split", "shards", "mock")
    others = [n for n, t in spec.targets.items() if n != chosen and t.kind in kinds]
    hint = f" (export.targets may name {' or '.join(others)} instead)" if others else ""
    ctx.note(("services", spec.name),
             f"service not exported: its target {chosen!r} has no Envoy equivalent{hint}")


def _address(host: str, port: int) -> Config:
    """A socket address; Envoy binds IP addresses only ("localhost" is 127.0.0.1)."""
    host = "127.0.0.1" if host == "localhost" else host
    return {"socket_address": {"address": host, "port_value": port}}


def _http_listener(ctx: Context, spec: ServiceSpec, chosen: str) -> Config | None:
    routes = HttpRoutes(ctx, spec).routes(chosen)
    if routes is None:
        _not_exported(ctx, spec, chosen)
        return None
    manager: Config = {
        "@type": HCM,
        "stat_prefix": spec.name,
        "codec_type": "AUTO",
        "route_config": {
            "name": spec.name,
            "virtual_hosts": [{"name": spec.name, "domains": ["*"], "routes": routes}],
        },
        "http_filters": [
            *fault_filters(ctx, spec),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    if spec.protocol in ("http2", "grpc"):
        manager["http2_protocol_options"] = {}
    return {"name": spec.name, "address": _address(spec.listen.host, spec.listen.port),
            "filter_chains": [{"filters": [
                {"name": "envoy.filters.network.http_connection_manager",
                 "typed_config": manager}]}]}


def _tcp_listener(ctx: Context, spec: ServiceSpec, chosen: str) -> Config | None:
    fault_filters(ctx, spec)  # reports each TCP fault as not exported
    filters = TcpFilters(ctx, spec).filters(chosen)
    if filters is None:
        _not_exported(ctx, spec, chosen)
        return None
    return {"name": spec.name, "address": _address(spec.listen.host, spec.listen.port),
            "filter_chains": [{"filters": filters}]}


def _metrics(options: Options) -> tuple[Config, Config]:
    """A listener that serves only the admin's Prometheus page and /ready, for scraping and
    probes from the pod's network (the admin itself stays on loopback)."""
    routes = [{"match": {"path": path}, "route": {"cluster": ADMIN_CLUSTER}}
              for path in (PROMETHEUS_PATH, "/ready")]  # /ready: the pod's probes
    listener = {"name": "devamb-metrics", "address": _address("0.0.0.0", options.metrics_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM, "stat_prefix": "devamb-metrics",
                        "route_config": {"name": "devamb-metrics", "virtual_hosts": [
                            {"name": "metrics", "domains": ["*"], "routes": routes}]},
                        "http_filters": [{"name": "envoy.filters.http.router",
                                          "typed_config": {"@type": ROUTER}}],
                    }}]}]}
    cluster = {"name": ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{
                   "lb_endpoints": [{"endpoint": {
                       "address": _address("127.0.0.1", options.admin_port)}}]}]}}
    return listener, cluster


def export_envoy(loaded: Loaded, options: Options = Options()) -> EnvoyExport:
    profile = loaded.profile
    ctx = Context(loaded, Report(loaded.source), profile.export.hosts)
    listeners: list[Config] = []
    exported: list[tuple[str, int]] = []
    for name, spec in profile.services.items():
        chosen = chosen_target(ctx, spec, options)
        if spec.tls is not None:
            ctx.note(("services", name, "tls"), "listener TLS is not exported (its key is a "
                                                "secret): Envoy listens in plain text")
        if 0 < spec.listen.port < 1024:
            ctx.note(("services", name, "listen"), "a port below 1024: the Kubernetes export "
                                                   "runs Envoy as non-root, which cannot bind it")
        if spec.inspect != type(spec.inspect)():
            ctx.note(("services", name, "inspect"), "recording is devamb's own: not exported")
        build = _tcp_listener if spec.protocol == "tcp" else _http_listener
        listener = build(ctx, spec, chosen)
        if listener is not None:
            listeners.append(listener)
            exported.append((name, spec.listen.port))
    for name in profile.scenarios:
        ctx.note(("scenarios", name), "scenarios drive devamb's live faults: not exported")
    metrics_listener, admin_cluster = _metrics(options)
    clusters = [ctx.clusters[n] for n in sorted(ctx.clusters)]
    bootstrap = {
        "node": {"id": f"devamb-{profile.name}", "cluster": profile.name},
        "admin": {"address": _address("127.0.0.1", options.admin_port)},
        "static_resources": {
            "listeners": [*listeners, metrics_listener],
            "clusters": [*clusters, admin_cluster],
        },
    }
    head = f"# Envoy bootstrap exported by devamb from {loaded.source.file}\n"
    if ctx.env_vars:
        head += (f"# Envoy reads {', '.join(sorted(ctx.env_vars))} from its environment "
                 "(secrets: never written here); set them where Envoy runs\n")
    text = head + dump(bootstrap)
    check_output(text, loaded, "the Envoy bootstrap")
    return EnvoyExport(text, ctx.report, tuple(sorted(ctx.env_vars)), tuple(exported))
