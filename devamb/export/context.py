"""What the mapping modules share while one profile is exported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devamb.export.load import Loaded
from devamb.export.report import Report
from devamb.profile.source import Path_

Config = dict[str, Any]


@dataclass
class Context:
    loaded: Loaded
    report: Report
    hosts: Mapping[str, str]  # export.hosts: "HOST:PORT" as on the laptop -> in the cluster
    clusters: dict[str, Config] = field(default_factory=dict)  # by name
    env_vars: set[str] = field(default_factory=set)  # ${VAR}s Envoy reads from its environment

    def raw(self, path: Path_) -> Any:
        """The profile's value at `path` as written (`${VAR}` unexpanded), or None."""
        value: Any = self.loaded.source.data
        for key in path:
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            else:
                return None
        return value

    def note(self, path: Path_, message: str) -> None:
        """A report line at `path`, or at the nearest part of it written in the profile (a
        default setting is reported where its section is)."""
        while len(path) > 1 and self.raw(path) is None:
            path = path[:-1]
        self.report.note(path, message)


def duration(seconds: float) -> str:
    """An Envoy duration: 0.25 -> "0.250s", 30 -> "30s"."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.3f}s"


def percent(share: float) -> Config:
    """A FractionalPercent of a 0..1 share, in millionths (exact to 1e-6)."""
    return {"numerator": round(share * 1_000_000), "denominator": "MILLION"}
