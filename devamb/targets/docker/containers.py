"""What a container looks like to devamb: name, id, state and the address the host can reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devamb.targets.docker.endpoints import Endpoint

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ContainerView:
    id: str
    name: str
    state: str  # Docker's State.Status: running, exited, paused, restarting, created, dead, ...
    endpoint: Endpoint | None  # set only while running and reachable
    note: str | None = None  # why there is no endpoint, when it is running

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.short_id,
            "state": self.state,
            "address": str(self.endpoint) if self.endpoint else None,
            "note": self.note,
        }


def container_view(attrs: dict[str, Any], port: int) -> ContainerView:
    """A view of one container from its inspect data (`container.attrs`)."""
    cid = attrs.get("Id", "")
    name = str(attrs.get("Name", "")).lstrip("/") or cid[:12]
    state = (attrs.get("State") or {}).get("Status", "unknown")
    if state != "running":
        return ContainerView(cid, name, state, None)
    found = reachable_address(attrs, port)
    if isinstance(found, str):
        return ContainerView(cid, name, state, None, found)
    return ContainerView(cid, name, state, Endpoint(found[0], found[1], cid))


def reachable_address(attrs: dict[str, Any], port: int) -> tuple[str, int] | str:
    """(host, port) the host reaches `port` of the container at, or why there is none.

    Host networking gives 127.0.0.1:port; a published port gives its host binding (a wildcard
    binding becomes loopback); otherwise the container's IP on its network.
    """
    mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
    if mode == "host":
        return LOOPBACK, port
    settings = attrs.get("NetworkSettings") or {}
    bindings = (settings.get("Ports") or {}).get(f"{port}/tcp") or []
    published = _published(bindings)
    if published is not None:
        return published
    if mode.startswith("container:"):
        return f"shares the network of container {mode.partition(':')[2][:12]}"
    networks: dict[str, Any] = settings.get("Networks") or {}
    preferred = [networks[mode]] if mode in networks else []
    for net in (*preferred, *networks.values()):
        ip = (net or {}).get("IPAddress")
        if ip:
            return ip, port
    return f"port {port} is not published and the container has no network address"


def _published(bindings: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The best host binding: IPv4 first; wildcards become loopback."""
    best: tuple[str, int] | None = None
    for binding in bindings:
        try:
            host_port = int(binding.get("HostPort") or 0)
        except ValueError:
            continue
        if not host_port:
            continue
        ip = binding.get("HostIp") or "0.0.0.0"
        if ip in ("0.0.0.0", ""):
            return LOOPBACK, host_port
        if ip == "::":
            best = best or ("::1", host_port)
        elif ":" in ip:
            best = best or (ip, host_port)
        else:
            return ip, host_port
    return best
