"""Clusters: a URL target, a pool's endpoints (with balance, health, outlier), TLS with SNI."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devamb.cluster.health import HealthSpec
from devamb.cluster.outlier import OutlierSpec
from devamb.export.context import Config, Context, duration
from devamb.profile.source import Path_

LB_POLICIES = {"round_robin": "ROUND_ROBIN", "least_requests": "LEAST_REQUEST",
               "random": "RANDOM", "hash": "RING_HASH"}
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # in the official Envoy image (Ubuntu)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Address:
    scheme: str
    host: str
    port: int
    path: str  # a URL target's path prefix ("" for none)

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def authority(self) -> str:
        """Host as devamb sends it upstream: host[:port], the port left out when default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"


def address(ctx: Context, url: str, path: Path_) -> Address:
    """The URL's host and port, as `export.hosts` rewrites them for the cluster."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    if "@" in parts.netloc:
        ctx.note(path, "credentials in the URL are not exported (they would be a secret in "
                       "the bootstrap): write headers: {Authorization: \"Basic ${VAR}\"}")
    written = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if written in ctx.hosts:
        new_host, _, new_port = ctx.hosts[written].rpartition(":")
        host, port = new_host.strip("[]"), int(new_port)
    return Address(parts.scheme, host, port, parts.path.rstrip("/"))


def _endpoint(a: Address) -> Config:
    return {"endpoint": {
        "address": {"socket_address": {"address": a.host, "port_value": a.port}},
        "hostname": a.authority,
    }}


def tls_socket(ctx: Context, a: Address, verify: bool, ca: str | None, path: Path_,
               alpn: list[str] | None = None) -> Config:
    """An upstream TLS transport socket with SNI; the CA inlined (it is not a secret)."""
    common: Config = {}
    if verify:
        if ca is None:
            trusted: Config = {"filename": SYSTEM_CA}
        else:
            try:
                trusted = {"inline_string": Path(ca).read_text(encoding="utf-8")}
            except OSError as exc:
                ctx.note((*path, "tls", "ca"), f"cannot read the CA file ({exc.strerror}); "
                                               f"the system CAs are used instead")
                trusted = {"filename": SYSTEM_CA}
        common["validation_context"] = {
            "trusted_ca": trusted,
            "match_typed_subject_alt_names": [
                {"san_type": "IP_ADDRESS" if a.is_ip else "DNS", "matcher": {"exact": a.host}}
            ],
        }
    if alpn:
        common["alpn_protocols"] = alpn
    context: Config = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                 "UpstreamTlsContext",
        "common_tls_context": common,
    }
    if not a.is_ip:
        context["sni"] = a.host
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def cluster(
    ctx: Context,
    name: str,
    addresses: list[Address],
    *,
    connect_timeout: float,
    protocol: str,
    tls: tuple[bool, str | None] | None = None,
    lb: str = "round_robin",
    pool: bool = False,
    path: Path_ = (),
) -> Config:
    """A cluster: STATIC for IP addresses, STRICT_DNS for a pool of names (every address
    resolved), LOGICAL_DNS for one name (as a proxy to an external host does)."""
    if all(a.is_ip for a in addresses):
        kind = "STATIC"
    else:
        kind = "STRICT_DNS" if pool or len(addresses) > 1 else "LOGICAL_DNS"
    config: Config = {
        "name": name,
        "type": kind,
        "connect_timeout": duration(connect_timeout),
        "lb_policy": LB_POLICIES[lb],
    }
    if kind != "STATIC":
        config["dns_lookup_family"] = "V4_PREFERRED"
    config["load_assignment"] = {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [_endpoint(a) for a in addresses]}],
    }
    h2 = protocol in ("http2", "grpc")
    if h2:
        config["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                         "HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    secure = [a for a in addresses if a.scheme == "https"]
    if secure and tls is not None:
        if len(secure) < len(addresses):
            ctx.note(path, "Envoy applies TLS to a whole cluster: the http:// endpoints are "
                           "reached with TLS too")
        verify, ca = tls
        config["transport_socket"] = tls_socket(
            ctx, secure[0], verify, ca, path, ["h2"] if h2 else None)
        if len({a.host for a in secure}) > 1:
            ctx.note(path, f"Envoy sends one SNI per cluster: {secure[0].host}")
    ctx.clusters[name] = config
    return config


def health_checks(spec: HealthSpec) -> list[Config]:
    check: Config = {
        "timeout": duration(spec.timeout),
        "interval": duration(spec.interval),
        "healthy_threshold": spec.healthy,
        "unhealthy_threshold": spec.unhealthy,
    }
    if spec.path is None:
        check["tcp_health_check"] = {}
    else:
        check["http_health_check"] = {"path": spec.path}
    return [check]


def outlier_detection(ctx: Context, spec: OutlierSpec, path: Path_) -> Config:
    ctx.note(path, "Envoy ejects an endpoint for eject_for times the number of its ejections "
                   "so far (devamb: eject_for each time)")
    return {  # devamb counts no answer and 502/503/504 (not 500): Envoy's gateway failures
        "consecutive_gateway_failure": spec.consecutive_failures,
        "enforcing_consecutive_gateway_failure": 100,
        "enforcing_consecutive_5xx": 0,
        "base_ejection_time": duration(spec.eject_for),
        "max_ejection_percent": round(spec.max_ejected * 100),
        "interval": "1s",
    }
