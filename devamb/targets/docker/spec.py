"""The `docker:` target kind as a profile writes it: which containers (by name, label, Compose
service, or an image devamb runs itself) and their port, read with positioned problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import TargetSpec
from devamb.targets.docker.launcher import (
    OWNER_LABELS,
    RunSettings,
    config_digest,
    container_name,
    owner_filter,
    owner_labels,
)
from devamb.targets.docker.selector import COMPOSE_PROJECT, COMPOSE_SERVICE, Selector

FINDERS = ("container", "label", "compose", "image")
IMAGE_KEYS = ("env", "command", "volumes", "network", "run", "wait", "labels")
KEYS = (*FINDERS, "port", *IMAGE_KEYS)
RUN_MODES = ("on-switch", "on-up")


@dataclass(frozen=True)
class DockerTargetSpec(TargetSpec):
    KIND = "docker"
    port: int = 0
    selector: Selector = field(default_factory=Selector)
    run: RunSettings | None = None  # set for `image:` targets: devamb runs the container
    run_mode: str = "on-switch"
    project: str = ""  # the profile's name (labels of containers devamb starts)
    profile: str = ""  # the profile's absolute path (ditto)

    def describe(self) -> str:
        if self.run is not None:
            return f"docker image {self.run.image} port {self.port} ({self.run_mode})"
        return f"docker {self.selector.describe()} port {self.port}"


def parse(name: str, node: Node, protocol: str) -> DockerTargetSpec | None:
    """`{docker: {container|label|compose|image: …, port: N, …}}`, with positioned problems.

    Every key present is checked, whatever else is wrong, so that all problems come out at once.
    """
    if not node.mapping(("docker",)):
        return None
    d = node.child("docker")
    if not isinstance(d.value, dict):
        d.mapping(KEYS)  # reports what it is instead
        return None
    before = len(d.reader.problems)
    d.mapping(KEYS, required=("port",))
    finders = [k for k in FINDERS if d.has(k)]
    if len(finders) != 1:
        found = f"found {', '.join(finders)}" if finders else "found none"
        d.problem(f"a docker target needs exactly one of {', '.join(FINDERS)}; {found}")
    port = d.child("port").integer(low=1, high=65535) if d.has("port") else None
    if finders and "image" not in finders:
        for key in IMAGE_KEYS:
            if d.has(key):
                d.child(key).problem(f"{key!r} applies to image targets only", key=True)
    project, profile = _profile_identity(node)
    selector: Selector | None = None
    run: RunSettings | None = None
    mode = "on-switch"
    for finder in finders:  # each one given is checked, even when there are too many
        if finder == "container":
            ref = d.child("container").string()
            selector = Selector(ref=ref) if ref else None
            if ref == "":
                d.child("container").problem("expected a container name or id")
        elif finder == "label":
            selector = _label_selector(d.child("label"))
        elif finder == "compose":
            selector = _compose_selector(d.child("compose"), project)
    if "image" in finders or not finders:  # without a finder, image settings may still be wrong
        image = d.child("image").string() if d.has("image") else None
        if d.has("run"):
            mode = d.child("run").one_of(RUN_MODES) or mode
        run = _run_settings(d, image or "", port or 0, Path(profile).parent)
        if run is not None and image is not None and port is not None:
            labels = owner_labels(profile, project, str(node.path[-3]), name, config_digest(run))
            selector = Selector(
                labels=tuple(owner_filter(labels, config=True)),
                text=f"container {container_name(project, str(node.path[-3]), name)}",
            )
    if len(d.reader.problems) > before or selector is None or port is None:
        return None
    return DockerTargetSpec(name, port, selector, run, mode, project, profile)


def _profile_identity(node: Node) -> tuple[str, str]:
    """(profile name, absolute profile path), read the way the profile loader reads them."""
    path = Path(node.reader.source.file).resolve()
    data = node.reader.source.data
    name = data.get("name") if isinstance(data, dict) else None
    return (name if isinstance(name, str) and name else path.parent.name), str(path)


def _label_selector(node: Node) -> Selector | None:
    items = node.elements() if isinstance(node.value, list) else [node]
    if isinstance(node.value, list) and not items:
        node.problem("expected at least one label")
        return None
    labels = []
    for item in items:
        text = item.string()
        if text is None:
            continue
        if not text.partition("=")[0].strip():
            item.problem(f"{text!r} is not a label: write KEY=VALUE or KEY")
            continue
        labels.append(text)
    if len(labels) != len(items):
        return None
    return Selector(labels=tuple(labels))


def _compose_selector(node: Node, default_project: str) -> Selector | None:
    if not isinstance(node.value, dict):
        node.mapping(("project", "service"))  # reports what it is instead
        return None
    node.mapping(("project", "service"), required=("service",))
    service = node.child("service").string() if node.has("service") else None
    project = node.child("project").string() if node.has("project") else default_project
    if not service or not project:
        return None
    return Selector(
        labels=(f"{COMPOSE_PROJECT}={project}", f"{COMPOSE_SERVICE}={service}"),
        text=f"compose service {project}/{service}",
    )


def _run_settings(d: Node, image: str, port: int, folder: Path) -> RunSettings | None:
    ok = True
    env: dict[str, str] = {}
    if d.has("env"):
        found = d.child("env").string_map()
        ok &= found is not None
        env = found or {}
    command: str | tuple[str, ...] | None = None
    if d.has("command"):
        command = _command(d.child("command"))
        ok &= command is not None
    volumes: list[str] = []
    for item in d.child("volumes").elements() if d.has("volumes") else []:
        volume = _volume(item, folder)
        ok &= volume is not None
        volumes.append(volume or "")
    if d.has("volumes") and not isinstance(d.child("volumes").value, list):
        d.child("volumes").problem(f"expected a list, got {type_name(d.child('volumes').value)}")
        ok = False
    network = d.child("network").string() if d.has("network") else None
    ok &= network is not None or not d.has("network")
    labels: dict[str, str] = {}
    if d.has("labels"):
        found = d.child("labels").string_map()
        ok &= found is not None
        labels = found or {}
        for key in labels:
            if key in OWNER_LABELS:
                d.child("labels").child(key).problem(f"{key} is set by devamb", key=True)
                ok = False
    wait = d.child("wait").duration() if d.has("wait") else 30.0
    ok &= wait is not None
    if not ok:
        return None
    return RunSettings(image, port, env, command, tuple(volumes), network, labels, wait or 30.0)


def _command(node: Node) -> str | tuple[str, ...] | None:
    if isinstance(node.value, str):
        return node.string()
    if not isinstance(node.value, list) or not node.value:
        node.problem(f"expected a string or a list of strings, got {type_name(node.value)}")
        return None
    parts = []
    for item in node.elements():
        if isinstance(item.value, int | float) and not isinstance(item.value, bool):
            item.value = str(item.value)
        text = item.string()
        if text is None:
            return None
        parts.append(text)
    return tuple(parts)


def _volume(node: Node, folder: Path) -> str | None:
    """A volume `SRC:DST[:ro|rw]`; a SRC starting with . is a host path relative to the profile."""
    text = node.string()
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        node.problem(f"{text!r} is not a volume: write SRC:/PATH or SRC:/PATH:ro")
        return None
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        node.problem(f"{parts[2]!r} is not a volume mode: write ro or rw")
        return None
    if parts[0].startswith("."):
        parts[0] = str((folder / parts[0]).resolve())
    return ":".join(parts)
