"""The profile toolkit: positioned YAML (source, reader), ${VAR} interpolation, units, problems and
the plain schema values. It imports nothing else of devamb: the assembly that knows every kind
(and the Profile it builds) is `devamb.engine.assembly`; a service's settings are
`devamb.service.spec.ServiceSpec`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devamb.profile.problems import Problem, ProfileError
from devamb.profile.schema import ListenAddress, TargetSpec
from devamb.profile.shipped import shipped_profile

DEFAULT_PROFILE = "devamb.yaml"


def __getattr__(name: str) -> Any:
    """MAX_FILE_BYTES, from the YAML reader: imported by what reads a profile, not by the CLI's
    control commands (`devamb status` has no YAML to read)."""
    if name == "MAX_FILE_BYTES":
        from devamb.profile.source import MAX_FILE_BYTES

        return MAX_FILE_BYTES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



def display_path(path: Path) -> str:
    """The path as a person would type it: relative to the working folder when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_profile_path(name: str | None, cwd: Path | None = None) -> Path:
    """A path, or a bare NAME meaning profiles/NAME.yaml beside the default profile (else a
    profile shipped in the package under that NAME: devamb/profile/shipped.py)."""
    cwd = cwd or Path.cwd()
    if not name:
        return cwd / DEFAULT_PROFILE
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name or candidate.exists():
        return candidate if candidate.is_absolute() else cwd / candidate
    local = cwd / "profiles" / f"{name}.yaml"
    if not local.exists():  # outside the checkout, `demo` is the profile shipped in the package
        return shipped_profile(name) or local
    return local


__all__ = [
    "DEFAULT_PROFILE",
    "MAX_FILE_BYTES",
    "ListenAddress",
    "Problem",
    "ProfileError",
    "TargetSpec",
    "display_path",
    "resolve_profile_path",
]
