"""Runtime choices (active targets) kept in `.devamb/state.json` across restarts."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devamb.service.spec import ServiceSpec

if TYPE_CHECKING:
    from devamb.faults.chain import FaultState
    from devamb.faults.spec import FaultSpec


class RuntimeState:
    """Active targets per service, each tied to the fingerprint of the service's profile text."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._services: dict[str, dict[str, Any]] = {}
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
        entry = self._services.get(spec.name) or {}
        if entry.get("fingerprint") == spec.fingerprint and entry.get("target") in spec.targets:
            return str(entry["target"])
        return spec.target

    def remember(self, spec: ServiceSpec, target: str) -> None:
        entry = self._entry(spec)
        entry["target"] = target
        self.save()

    def restored_faults(self, spec: ServiceSpec) -> dict[str, FaultSpec]:
        """The profile's faults, with on/off toggles kept if the service is unchanged."""
        entry = self._services.get(spec.name)
        toggles = entry.get("faults", {}) if entry and entry.get("fingerprint") == (
            spec.fingerprint) else {}
        return {
            name: dataclasses.replace(fault, enabled=toggles[name])
            if isinstance(toggles.get(name), bool) else fault
            for name, fault in spec.faults.items()
        }

    def remember_faults(self, spec: ServiceSpec, states: Iterable[FaultState]) -> None:
        """Keep on/off choices for the faults the profile defines (added ones are not kept)."""
        toggles = {s.spec.name: s.enabled for s in states if s.spec.name in spec.faults}
        self._entry(spec)["faults"] = toggles
        self.save()

    def _entry(self, spec: ServiceSpec) -> dict[str, Any]:
        entry = self._services.get(spec.name)
        if not entry or entry.get("fingerprint") != spec.fingerprint:
            entry = self._services[spec.name] = {"fingerprint": spec.fingerprint,
                                                 "target": spec.target}
        return entry

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"services": self._services}, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)
