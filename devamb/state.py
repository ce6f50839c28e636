"""Runtime choices (active targets) kept in `.devamb/state.json` across restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devamb.profile.schema import ServiceSpec


class RuntimeState:
    """Active targets per service, each tied to the fingerprint of the service's profile text."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._services: dict[str, dict[str, str]] = {}
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._services = {
                    name: entry
                    for name, entry in data.get("services", {}).items()
                    if isinstance(entry, dict)
                }
            except (OSError, ValueError, AttributeError):
                self._services = {}  # a damaged state file only loses runtime choices

    def restored_target(self, spec: ServiceSpec) -> str:
        """The remembered target if the service is unchanged since, else the profile's."""
        entry = self._services.get(spec.name)
        unchanged = entry and entry.get("fingerprint") == spec.fingerprint
        if unchanged and entry["target"] in spec.targets:
            return entry["target"]
        return spec.target

    def remember(self, spec: ServiceSpec, target: str) -> None:
        self._services[spec.name] = {"fingerprint": spec.fingerprint, "target": target}
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"services": self._services}, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)
