"""Turns positioned YAML data into a Profile, reporting every problem at once."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devamb.faults.spec import FaultSpec, parse_fault
from devamb.grpc import SCHEMA_KEYS
from devamb.policies.breaker import parse_breaker
from devamb.policies.retry import parse_retries
from devamb.profile import display_path
from devamb.profile.env import Interpolator
from devamb.profile.export_section import ExportSpec, parse_export
from devamb.profile.listen import Bound, bound_addresses, shared_address
from devamb.profile.problems import Problem, ProfileError
from devamb.profile.reader import Node, Reader, type_name
from devamb.profile.schema import InspectSpec, ListenAddress, TargetSpec
from devamb.profile.source import Source, read_source
from devamb.service.listener_tls import parse_listener_tls
from devamb.service.spec import ServiceSpec
from devamb.targets.registry import H2_PROTOCOLS, target_kind
from devamb.toxiproxy.address import parse_profile_key
from devamb.wire import TCP_PROTOCOLS, WIRE_PROTOCOLS, transport

if TYPE_CHECKING:  # imported by the profiles that have scenarios, bastions (issue 22: RSS)
    from devamb.faults.scenario import ScenarioSpec
    from devamb.tunnel.spec import BastionSpec

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The target recorded for requests devamb answers itself (service.http.ANSWERED_BY_DEVAMB).
RESERVED_TARGETS = frozenset({"devamb"})
PROTOCOLS = ("http", "tcp", "http2", "grpc", *WIRE_PROTOCOLS)
ON_SWITCH = ("drain", "close", "keep")
TOP_KEYS = (
    "version", "name", "services", "scenarios", "inspect", "toxiproxy_api", "export", "bastions",
)
INSPECT_KEYS = ("bodies", "keep", "redact", "redaction")
SERVICE_KEYS = (
    "listen", "protocol", "target", "targets", "timeout", "keep_host", "target_header", "faults",
    "header_faults", "inspect", "connect_timeout", "per_try_timeout", "retries", "circuit_breaker",
    "proto", "descriptor_set", "tls", "on_switch", "redact_params",
)
PLANNED_SERVICE_KEYS = {
    key: f"{key!r} is not supported by this version of devamb yet"
    for key in ("health", "outlier")
}
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Profile:
    """A validated profile: immutable values the engine builds services from."""

    path: Path
    name: str
    services: Mapping[str, ServiceSpec]
    scenarios: Mapping[str, ScenarioSpec] = field(default_factory=dict)
    record_budget: int = 64 * 1024 * 1024  # bytes all recorded exchanges may use together
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    warnings: tuple[str, ...] = ()
    toxiproxy_api: str | None = None  # HOST:PORT of the Toxiproxy-compatible API, if served
    export: ExportSpec = field(default_factory=ExportSpec)  # read by `devamb export` only
    bastions: Mapping[str, BastionSpec] = field(default_factory=dict)  # and inline `via:` ones


def build_profile(source: Source, interpolator: Interpolator, path: Path) -> Profile:
    reader = Reader(source, interpolator)
    root = reader.root()
    services: dict[str, ServiceSpec] = {}
    scenarios: dict[str, ScenarioSpec] = {}
    budget = Profile.record_budget
    name = path.resolve().parent.name
    warnings: list[str] = []
    toxiproxy_api = None
    export = ExportSpec()
    bastions: dict[str, BastionSpec] = {}
    if root.value is None:
        root.problem("the profile is empty; it needs at least 'version: 1' and 'services:'")
    elif root.mapping(TOP_KEYS, required=("services",)) or isinstance(root.value, dict):
        # every part that is present is checked, so that all problems come out in one run
        version = root.child("version")
        if version.value is not None and version.value != 1:
            version.problem(f"unsupported version {version.value!r}; this devamb reads version 1")
        if root.has("name"):
            name = root.child("name").string() or name
        if root.has("bastions"):
            from devamb.tunnel.spec import parse_bastions

            bastions = parse_bastions(root.child("bastions"))
        if root.has("services"):
            services = _services(root.child("services"), warnings)
            listed = root.child("bastions").value
            listed = listed if isinstance(listed, dict) else {}
            _check_vias(root.child("services"), bastions, listed)
        if root.has("scenarios"):
            scenarios = _scenarios(root, services)
        if root.has("inspect"):
            top = root.child("inspect")
            if top.mapping(("budget",)) and top.has("budget"):
                budget = top.child("budget").size() or budget
        if root.has("toxiproxy_api"):
            toxiproxy_api = parse_profile_key(root.child("toxiproxy_api"))
        if root.has("export"):
            targets = {n: s.targets for n, s in services.items()}
            export = parse_export(root.child("export"), targets) or export
    if reader.problems:
        raise ProfileError(reader.problems, interpolator.secrets)
    return Profile(
        path, name, services, scenarios, budget, frozenset(interpolator.secrets), tuple(warnings),
        toxiproxy_api=toxiproxy_api, export=export, bastions=bastions,
    )


def _check_vias(services: Node, bastions: dict[str, BastionSpec], listed: Any) -> None:
    """Every target's `via:` names a bastion (or is an inline ssh:// one, added here)."""
    for _, service in services.items():
        for _, target in service.child("targets").items():
            shards = target.child("shards")
            for node in [target, *shards.elements(), *(n for _, n in shards.items())]:
                if node.has("via"):
                    from devamb.tunnel.spec import check_via

                    check_via(node.child("via"), bastions, listed)


def _services(node: Node, warnings: list[str]) -> dict[str, ServiceSpec]:
    if not isinstance(node.value, dict):
        node.problem(f"expected a mapping of services, got {type_name(node.value)}")
        return {}
    if not node.value:
        node.problem("define at least one service")
    services: dict[str, ServiceSpec] = {}
    taken: dict[int, list[tuple[ListenAddress, Bound, str]]] = {}  # port -> listeners so far
    for name, child in node.items():
        named = bool(NAME.match(name))
        if not named:
            child.problem(f"service name {name!r} may use letters, digits, '_', '.', '-'", key=True)
        spec, listen = _service(name, child)  # checked even when its name is wrong
        if listen is not None and listen.port:
            same_port = taken.setdefault(listen.port, [])
            clash = _clash(listen, same_port)
            if clash:
                child.child("listen").problem(clash)
                continue
            same_port.append((listen, bound_addresses(listen), name))
        if spec is None or not named:
            continue
        if not spec.listen.is_loopback:
            warnings.append(
                f"service {name!r} listens on {spec.listen}, which other machines can reach"
            )
        services[name] = spec
    return services


def _clash(listen: ListenAddress, same_port: list[tuple[ListenAddress, Bound, str]]) -> str | None:
    """Why `listen` cannot bind beside the listeners on its port so far (a shared address)."""
    mine = bound_addresses(listen)
    for other, theirs, owner in same_port:
        if other == listen:
            return f"{listen} is already the listener of service {owner!r}"
        shared = shared_address(mine, theirs)
        if shared is not None:
            both = f"[{shared}]:{listen.port}" if ":" in shared else f"{shared}:{listen.port}"
            return (
                f"{listen} overlaps {other}, the listener of service {owner!r} "
                f"(both would bind {both})"
            )
    return None


def _service(name: str, node: Node) -> tuple[ServiceSpec | None, ListenAddress | None]:
    """The service's spec (None after a problem) and its listen address (for clash checks)."""
    if not isinstance(node.value, dict):
        node.mapping(SERVICE_KEYS)  # reports what it is instead
        return None, None
    complete = node.mapping(
        SERVICE_KEYS, required=("listen", "targets"), later=PLANNED_SERVICE_KEYS
    )  # an unknown key is reported but does not hide the service from scenarios
    before = len(node.reader.problems)
    listen = _listen(node.child("listen")) if node.has("listen") else None
    protocol = node.child("protocol").one_of(PROTOCOLS) if node.has("protocol") else "http"
    wire = protocol  # postgres, redis: the targets and connection faults see tcp
    protocol = transport(protocol) if protocol is not None else None
    on_switch, redact_params = _wire_keys(node, wire)
    targets = (_targets(node.child("targets"), protocol or "http", wire or "http")
               if node.has("targets") else {})
    active = _active_target(node, targets) if node.has("targets") else None
    timeout = node.child("timeout").duration() if node.has("timeout") else DEFAULT_TIMEOUT
    keep_host = node.child("keep_host").boolean() if node.has("keep_host") else False
    header = node.child("target_header").boolean() if node.has("target_header") else True
    kinds = {name: spec.kind for name, spec in targets.items()}
    faults = (
        _faults(node.child("faults"), wire or "http", kinds) if node.has("faults") else {}
    )
    header_faults = (
        node.child("header_faults").boolean() if node.has("header_faults") else False
    )
    inspect = _inspect(node.child("inspect")) if node.has("inspect") else InspectSpec()
    connect_timeout = _optional(node, "connect_timeout", Node.duration)
    per_try_timeout = _optional(node, "per_try_timeout", Node.duration)
    tls = (
        parse_listener_tls(node.child("tls"), protocol or "http") if node.has("tls") else None
    )
    retries = _optional(node, "retries", lambda n: parse_retries(n, protocol or "http"))
    breaker = _optional(node, "circuit_breaker", parse_breaker)
    if (retries is not None or breaker is not None) and protocol == "tcp":
        key = "retries" if retries is not None else "circuit_breaker"
        node.child(key).problem(f"{key!r} applies to http, http2 and grpc services only",
                                key=True)
    schema = None
    if protocol in H2_PROTOCOLS:
        from devamb.grpc.profile import parse_schema  # protoc and schemas: http2 and gRPC only

        schema = parse_schema(node)
        mocks = any(spec.kind == "mock" for spec in targets.values())
        if mocks and (schema is not None or not any(node.has(k) for k in SCHEMA_KEYS)):
            # (else reported) the mock server is imported only by a profile that has mocks
            from devamb.targets.mock.target import bind_grpc_schema

            targets = bind_grpc_schema(
                targets, None if schema is None else schema.schema, node.reader.problems
            )
    elif protocol is not None:
        for key in (k for k in SCHEMA_KEYS if node.has(k)):
            node.child(key).problem("applies to http2 and grpc services only", key=True)
    if not complete or len(node.reader.problems) > before or listen is None or protocol is None:
        return None, listen
    assert active is not None and timeout is not None
    assert wire is not None
    return ServiceSpec(
        name=name,
        listen=listen,
        protocol=wire,
        on_switch=on_switch,
        redact_params=redact_params,
        target=active,
        targets=targets,
        timeout=timeout,
        keep_host=bool(keep_host),
        target_header=bool(header),
        faults=faults,
        header_faults=bool(header_faults),
        inspect=inspect or InspectSpec(),
        connect_timeout=connect_timeout,
        per_try_timeout=per_try_timeout,
        retries=retries,
        circuit_breaker=breaker,
        tls=tls,
        fingerprint=_fingerprint(node.value),
        schema=None if schema is None else schema.schema,
        schema_files=() if schema is None else schema.files,
    ), listen


def _wire_keys(node: Node, protocol: str | None) -> tuple[str, bool]:
    """`on_switch` (tcp, postgres, redis) and `redact_params` (postgres)."""
    default = "drain" if protocol in WIRE_PROTOCOLS else "keep"
    on_switch = default
    if node.has("on_switch"):
        if protocol not in TCP_PROTOCOLS:
            node.child("on_switch").problem("'on_switch' applies to tcp, postgres and redis "
                                            "services (their connections outlive a switch)",
                                            key=True)
        else:
            chosen = node.child("on_switch").one_of(ON_SWITCH)
            if chosen == "drain" and protocol == "tcp":
                node.child("on_switch").problem("'drain' needs a protocol devamb reads (postgres "
                                                "or redis): a tcp relay has no safe point; use "
                                                "close or keep")
            on_switch = chosen or default
    redact = False
    if node.has("redact_params"):
        if protocol != "postgres":
            node.child("redact_params").problem("'redact_params' applies to postgres services",
                                                key=True)
        redact = bool(node.child("redact_params").boolean())
    return on_switch, redact


def _scenarios(root: Node, services: dict[str, ServiceSpec]) -> dict[str, ScenarioSpec]:
    """Scenarios are checked against the valid services; a step naming a service that has
    problems of its own is not reported again as naming an unknown service."""
    from devamb.faults.scenario import parse_scenarios  # only profiles with scenarios

    reader = root.reader
    before = len(reader.problems)
    scenarios = parse_scenarios(root.child("scenarios"), services)
    listed = root.child("services").value
    broken = [n for n in listed if n not in services] if isinstance(listed, dict) else []
    if broken:
        echoes = tuple(f"{n!r} is not one of" for n in broken)
        reader.problems[before:] = [
            p for p in reader.problems[before:]
            if not (p.path.endswith(".service") and p.message.startswith(echoes))
        ]
    return scenarios


def _listen(node: Node) -> ListenAddress | None:
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        host, port_text = "127.0.0.1", str(value)
    elif isinstance(value, str):
        m = re.match(r"^(?:\[([^\]]+)\]|([^:]+)):(\d+)$", value) or re.match(r"^()()(\d+)$", value)
        if not m:
            node.problem(f"{value!r} is not a port or HOST:PORT")
            return None
        host, port_text = m.group(1) or m.group(2) or "127.0.0.1", m.group(3)
    else:
        node.problem(f"expected a port or HOST:PORT, got {type_name(value)}")
        return None
    port = int(port_text)
    if not 0 <= port <= 65535:
        node.problem(f"port {port} is out of range 0..65535")
        return None
    return ListenAddress(host, port)


def _targets(node: Node, protocol: str, declared: str) -> dict[str, TargetSpec]:
    """`protocol`: what the targets see (tcp for postgres, redis); `declared`: the service's."""
    if not isinstance(node.value, dict) or not node.value:
        node.problem("expected a mapping of target names to targets, with at least one target")
        return {}
    targets: dict[str, TargetSpec] = {}
    for name, child in node.items():
        if not NAME.match(name):
            child.problem(f"target name {name!r} may use letters, digits, '_', '.', '-'", key=True)
            continue
        if name in RESERVED_TARGETS:
            reason = "it marks requests devamb answers itself"
            child.problem(f"target name {name!r} is reserved: {reason}", key=True)
            continue
        kind = target_kind(child)
        if kind is None:
            continue
        refusal = kind.refusal(declared)
        if refusal is not None:  # refused here, not at the first request
            where = child.child(kind.key) if isinstance(child.value, dict) else child
            where.problem(f"{refusal}; this is a {declared} service", key=where is not child)
            continue
        spec = kind.parse(name, child, protocol)
        if spec is not None:
            targets[name] = spec
    return targets


def _faults(node: Node, protocol: str, targets: dict[str, str]) -> dict[str, FaultSpec]:
    if not isinstance(node.value, dict):
        node.problem(f"expected a mapping of fault names to faults, got {type_name(node.value)}")
        return {}
    faults: dict[str, FaultSpec] = {}
    for name, child in node.items():
        if not NAME.match(name):
            child.problem(f"fault name {name!r} may use letters, digits, '_', '.', '-'", key=True)
            continue
        spec = parse_fault(name, child, protocol, targets)
        if spec is not None:
            faults[name] = spec
    return faults


def _optional(node: Node, key: str, read: Callable[[Node], Any]) -> Any:
    return read(node.child(key)) if node.has(key) else None


def _inspect(node: Node) -> InspectSpec | None:
    if not node.mapping(INSPECT_KEYS):
        return None
    default = InspectSpec()
    bodies = node.child("bodies").size() if node.has("bodies") else default.bodies
    keep = node.child("keep").integer(low=0) if node.has("keep") else default.keep
    redact: tuple[str, ...] = ()
    if node.has("redact"):
        values = node.child("redact").value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            node.child("redact").problem("expected a list of header or field names")
        else:
            redact = tuple(values)
    redaction = node.child("redaction").boolean() if node.has("redaction") else True
    if bodies is None or keep is None or redaction is None:
        return None
    return InspectSpec(bodies, keep, redact, redaction)


def _active_target(node: Node, targets: dict[str, TargetSpec]) -> str | None:
    listed = node.child("targets").value
    names = [str(n) for n in listed] if isinstance(listed, dict) else []  # else reported already
    if not node.has("target"):
        if len(names) == 1:
            return names[0]
        node.problem("missing required key 'target' (which target is active at start)")
        return None
    active = node.child("target").string(interpolate=False)
    if active is not None and active not in names:
        if names:  # a `targets:` that is no mapping is reported on its own
            node.child("target").problem(f"{active!r} is not one of {', '.join(names)}")
        return None
    return active


def _fingerprint(value: Any) -> str:
    """A hash of the service's raw profile text (before ${VAR} expansion: no secrets in it)."""
    return _sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _sha256(data: bytes) -> Any:
    """`hashlib.sha256(data)` from CPython's own SHA-256 (the same digest): importing hashlib
    sets up OpenSSL's digest tables, 0.5 MiB of an engine's RSS after start (issue 22)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:  # a Python built without its own hashes
            from hashlib import sha256
    return sha256(data)


def load_profile(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Profile:
    """Read and validate a profile; raises ProfileError listing every problem."""
    path = Path(path)
    file = display_path(path)
    try:
        source = read_source(path, file)
    except OSError as exc:
        problem = Problem(file, 1, 1, "", f"cannot read profile: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    return build_profile(source, Interpolator.beside(path, environ), path)


def parse_service(name: str, data: dict[str, Any], origin: str) -> ServiceSpec:
    """One service from data that is not a profile file (the Toxiproxy API's proxies), by the
    same rules as a profile's services; ProfileError with the problems."""
    reader = Reader(Source(origin, data), Interpolator({}, {}))
    if not NAME.match(name):
        reader.root().problem(f"service name {name!r} may use letters, digits, '_', '.', '-'")
    spec, _ = _service(name, reader.root())
    if reader.problems or spec is None:
        raise ProfileError(reader.problems or [Problem(origin, 0, 0, "", "invalid service")])
    return spec
