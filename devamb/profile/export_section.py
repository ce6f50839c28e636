"""The profile's `export:` section, read by `devamb check` and `devamb export` alike."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from devamb.profile.reader import Node, type_name

EXPORT_KEYS = ("targets", "hosts")
_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


@dataclass(frozen=True)
class ExportSpec:
    """The profile's `export:` section: what `devamb export` takes for the cluster.

    `targets` names the exported target per service (else the active one); `hosts` rewrites
    upstream `HOST:PORT`s (a laptop's 127.0.0.1:8001 is a Service's DNS name in the cluster)."""

    targets: Mapping[str, str] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)


def parse_export(node: Node, services: Mapping[str, Mapping[str, object]]) -> ExportSpec | None:
    """`export: {targets: {SERVICE: TARGET}, hosts: {"HOST:PORT": "HOST:PORT"}}`; `services`
    gives each valid service's target names, to check `targets` against."""
    if not node.mapping(EXPORT_KEYS):
        return None
    before = len(node.reader.problems)
    targets: dict[str, str] = {}
    if node.has("targets"):
        listed = node.child("targets")
        if not isinstance(listed.value, dict):
            listed.problem(f"expected a mapping of service names to target names, "
                           f"got {type_name(listed.value)}")
        for service, child in listed.items():
            name = child.string(interpolate=False)
            if name is None:
                continue
            if service not in services:
                known = ", ".join(services) or "none"
                child.problem(f"{service!r} is not a service of this profile; known: {known}",
                              key=True)
            elif name not in services[service]:
                known = ", ".join(services[service])
                child.problem(f"{name!r} is not a target of service {service!r}; known: {known}")
            else:
                targets[service] = name
    hosts: dict[str, str] = {}
    if node.has("hosts"):
        listed = node.child("hosts")
        if not isinstance(listed.value, dict):
            listed.problem(f"expected a mapping of HOST:PORT to HOST:PORT, "
                           f"got {type_name(listed.value)}")
        for written, child in listed.items():
            if not _HOST_PORT.match(str(written)):
                child.problem(f"{written!r} is not HOST:PORT", key=True)
                continue
            value = child.string(interpolate=False)
            if value is not None and not _HOST_PORT.match(value):
                child.problem(f"{value!r} is not HOST:PORT (e.g. payments.dev.svc:80)")
            elif value is not None:
                hosts[str(written)] = value
    if len(node.reader.problems) > before:
        return None
    return ExportSpec(targets, hosts)
