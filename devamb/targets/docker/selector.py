"""Which containers a docker target routes to: one by name or id, or all carrying some labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


@dataclass(frozen=True)
class Selector:
    """`ref` names one container (name or id); otherwise every container with all `labels`."""

    ref: str = ""
    labels: tuple[str, ...] = ()  # "key=value" or "key"
    text: str = ""  # how to name it to a developer: "container 'api'", "label app=api", ...

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.ref:
            return f"container {self.ref!r}"
        return "label " + ", ".join(self.labels)

    def find(self, client: docker.DockerClient) -> list[Container]:
        """Matching containers in any state, fully inspected (blocking: run off the loop)."""
        if self.ref:
            try:
                return [client.containers.get(self.ref)]
            except docker.errors.NotFound:
                return []
        found = client.containers.list(
            all=True, filters={"label": list(self.labels)}, ignore_removed=True
        )
        return sorted(found, key=lambda c: c.name or "")

    def concerns(self, event: Mapping[str, Any], known_ids: Iterable[str]) -> bool:
        """Whether a Docker event may change what this selector resolves to."""
        actor = event.get("Actor") or {}
        attributes: Mapping[str, str] = actor.get("Attributes") or {}
        if event.get("Type") == "network":
            return attributes.get("container", "") in set(known_ids)
        action = str(event.get("Action") or event.get("status") or "")
        if action.startswith(("exec_", "attach", "top", "resize", "export", "commit", "copy")):
            return False
        cid = str(actor.get("ID") or event.get("id") or "")
        if cid in set(known_ids):
            return True
        if self.ref:
            return attributes.get("name") == self.ref.lstrip("/") or cid.startswith(self.ref)
        return all(label_matches(attributes, label) for label in self.labels)


def label_matches(labels: Mapping[str, str], label: str) -> bool:
    key, eq, value = label.partition("=")
    if not eq:
        return key in labels
    return labels.get(key) == value
