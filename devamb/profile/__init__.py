"""Profiles: `devamb.yaml` loaded with positions, interpolated and validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from devamb.profile.env import Interpolator
from devamb.profile.problems import Problem, ProfileError
from devamb.profile.schema import ListenAddress, Profile, ServiceSpec, TargetSpec
from devamb.profile.source import MAX_FILE_BYTES, read_source

DEFAULT_PROFILE = "devamb.yaml"


def load_profile(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Profile:
    """Read and validate a profile; raises ProfileError listing every problem."""
    path = Path(path)
    file = display_path(path)
    try:
        source = read_source(path, file)
    except OSError as exc:
        problem = Problem(file, 1, 1, "", f"cannot read profile: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    # Validation knows every target and fault kind (and so imports aiohttp, docker, ...):
    # imported here, commands that only talk to a running engine start faster.
    from devamb.profile.validate import build_profile

    return build_profile(source, Interpolator.beside(path, environ), path)


def display_path(path: Path) -> str:
    """The path as a person would type it: relative to the working folder when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_profile_path(name: str | None, cwd: Path | None = None) -> Path:
    """A path, or a bare NAME meaning profiles/NAME.yaml beside the default profile."""
    cwd = cwd or Path.cwd()
    if not name:
        return cwd / DEFAULT_PROFILE
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name or candidate.exists():
        return candidate if candidate.is_absolute() else cwd / candidate
    return cwd / "profiles" / f"{name}.yaml"


__all__ = [
    "DEFAULT_PROFILE",
    "MAX_FILE_BYTES",
    "ListenAddress",
    "Problem",
    "Profile",
    "ProfileError",
    "ServiceSpec",
    "TargetSpec",
    "display_path",
    "load_profile",
    "resolve_profile_path",
]
