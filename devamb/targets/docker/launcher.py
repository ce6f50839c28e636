"""Containers devamb starts itself for `image:` targets: create, wait until they answer, remove.

Only containers carrying devamb's ownership labels are ever removed here; the SDK calls block, so
callers run `start_container`, `remove_owned` and `exit_summary` with `asyncio.to_thread` (`launch`
does so itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from devamb.targets.docker.containers import container_view
from devamb.targets.docker.endpoints import Endpoint

PROJECT_LABEL = "devamb.project"
SERVICE_LABEL = "devamb.service"
TARGET_LABEL = "devamb.target"
PROFILE_LABEL = "devamb.profile"  # the profile's absolute path: owners never collide
CONFIG_LABEL = "devamb.config"  # a digest of the run settings: a changed target starts afresh
OWNER_LABELS = (PROJECT_LABEL, SERVICE_LABEL, TARGET_LABEL, PROFILE_LABEL, CONFIG_LABEL)
LOG_TAIL = 5  # lines of a failed container's log quoted in the error
PROBE_INTERVAL = 0.1  # seconds between readiness probes of a starting container


class LaunchFailed(Exception):
    """The container could not be started or never answered; the message says why."""


@dataclass(frozen=True)
class RunSettings:
    """How to run a container for a target (the `image:` form of a docker target)."""

    image: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    command: str | tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()  # "SRC:DST[:ro|rw]", SRC already absolute or a volume name
    network: str | None = None  # "host", a network name, or None for Docker's default
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels from the profile
    wait: float = 30.0  # seconds to wait for the port to answer


def config_digest(run: RunSettings) -> str:
    """Names the run settings without showing them (env values may be secrets)."""
    return hashlib.sha256(repr(run).encode()).hexdigest()[:16]


def owner_labels(
    profile: str, project: str, service: str, target: str, config: str
) -> dict[str, str]:
    return {
        PROJECT_LABEL: project,
        SERVICE_LABEL: service,
        TARGET_LABEL: target,
        PROFILE_LABEL: profile,
        CONFIG_LABEL: config,
    }


def owner_filter(labels: Mapping[str, str], *, config: bool = False) -> list[str]:
    """The label filter for one target's containers, of any run settings unless `config`."""
    keys = (PROFILE_LABEL, SERVICE_LABEL, TARGET_LABEL) + ((CONFIG_LABEL,) if config else ())
    return [f"{k}={labels[k]}" for k in keys]


# Live target instances per (owner, config). On a profile reload the new instance of a target
# adopts the running container before the old instance closes: the old one must leave it be.
_claims: dict[tuple[str, ...], set[int]] = {}
_claims_lock = threading.Lock()


def claim(labels: Mapping[str, str], holder: object) -> None:
    with _claims_lock:
        _claims.setdefault(tuple(owner_filter(labels, config=True)), set()).add(id(holder))


def unclaim(labels: Mapping[str, str], holder: object) -> frozenset[str]:
    """Drop `holder`'s claim; the configs of this target other live instances still hold."""
    key = tuple(owner_filter(labels, config=True))
    owner = key[:-1]
    with _claims_lock:
        holders = _claims.get(key, set())
        holders.discard(id(holder))
        if not holders:
            _claims.pop(key, None)
        return frozenset(k[-1].partition("=")[2] for k in _claims if k[:-1] == owner)


def container_name(project: str, service: str, target: str) -> str:
    raw = f"devamb-{project}-{service}-{target}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw).strip("-.") or "devamb"


def remove_owned(
    client: docker.DockerClient, labels: Mapping[str, str], keep: frozenset[str] = frozenset()
) -> list[str]:
    """Force-remove this target's containers (devamb-labelled only) except those whose config
    is in `keep`; their names."""
    removed: list[str] = []
    for container in client.containers.list(
        all=True, filters={"label": owner_filter(labels)}, ignore_removed=True
    ):
        if container.labels.get(CONFIG_LABEL) in keep:
            continue
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(container.name or container.short_id)
    return removed


def remove_container(client: docker.DockerClient, cid: str) -> None:
    """Force-remove one container devamb started (gone already is fine)."""
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(cid, force=True)


def start_container(
    client: docker.DockerClient,
    run: RunSettings,
    name: str,
    labels: Mapping[str, str],
    cancelled: threading.Event,
) -> str:
    """Remove leftovers of this target, then create and start its container; its id.

    `cancelled` is set when the target closes meanwhile: the new container is removed again.
    """
    remove_owned(client, labels)
    options: dict[str, Any] = {
        "name": name,
        "command": list(run.command) if isinstance(run.command, tuple) else run.command,
        "environment": dict(run.env),
        "volumes": list(run.volumes),
        "labels": {**run.labels, **labels},
        "init": True,
        "detach": True,
    }
    if run.network == "host":
        options["network_mode"] = "host"
    else:
        options["ports"] = {f"{run.port}/tcp": ("127.0.0.1", None)}
        if run.network:
            options["network"] = run.network
    try:
        container = client.containers.create(run.image, **options)
    except docker.errors.ImageNotFound:
        raise LaunchFailed(f"image {run.image!r} is not available locally") from None
    except docker.errors.APIError as exc:
        raise LaunchFailed(f"cannot create container {name}: {api_message(exc)}") from None
    try:
        container.start()
    except docker.errors.APIError as exc:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
        raise LaunchFailed(f"cannot start container {name}: {api_message(exc)}") from None
    if cancelled.is_set():
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
        raise LaunchFailed(f"container {name} was not needed any more")
    return str(container.id)


async def launch(
    client: docker.DockerClient,
    run: RunSettings,
    name: str,
    labels: Mapping[str, str],
    cancelled: threading.Event,
) -> Endpoint:
    """Start the container (`start_container`) and wait until its port answers; the endpoint
    that answered. Raises LaunchFailed when the container exits or goes away while starting, or
    stays silent for `run.wait` seconds (it is removed then)."""
    started = time.monotonic()
    cid = await asyncio.to_thread(start_container, client, run, name, labels, cancelled)
    deadline = started + run.wait
    while True:
        attrs = await asyncio.to_thread(inspect, client, cid)
        if attrs is None:
            raise LaunchFailed(f"container {name} was removed while starting")
        view = container_view(attrs, run.port)
        if view.state in ("exited", "dead"):
            summary = await asyncio.to_thread(exit_summary, client, cid)
            raise LaunchFailed(f"container {name} {summary}")
        if view.endpoint is not None and await answers(view.endpoint):
            return view.endpoint
        if time.monotonic() > deadline:
            with contextlib.suppress(docker.errors.DockerException):
                await asyncio.to_thread(remove_container, client, cid)
            raise LaunchFailed(
                f"port {run.port} of container {name} did not answer within {run.wait:g}s"
            )
        await asyncio.sleep(PROBE_INTERVAL)


def inspect(client: docker.DockerClient, cid: str) -> dict[str, Any] | None:
    try:
        return client.api.inspect_container(cid)
    except docker.errors.NotFound:
        return None


def exit_summary(client: docker.DockerClient, cid: str) -> str:
    """'exited with code 1: <last log lines>' for a container that stopped while starting."""
    try:
        container = client.containers.get(cid)
        code = container.attrs.get("State", {}).get("ExitCode")
        tail = container.logs(tail=LOG_TAIL).decode(errors="replace").strip()
    except docker.errors.NotFound:
        return "was removed"
    lines = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
    return f"exited with code {code}" + (f": {lines}" if lines else " (no output)")


def api_message(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


async def answers(endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at `endpoint` and does not hang up at once.

    A published port is accepted by docker-proxy even before the process inside listens; it then
    closes the connection immediately, which is what the short read tells apart.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    except (OSError, TimeoutError):
        return False
    try:
        data = await asyncio.wait_for(reader.read(1), 0.1)
    except TimeoutError:
        return True  # connected and quiet: a server waiting for its client
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return bool(data)
