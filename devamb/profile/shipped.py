"""Profiles shipped inside the package (the demo), so `devamb up demo` works outside the checkout.

The wheel carries them as package data under devamb/_profiles (pyproject's force-include); a
checkout reads the repo's profiles/. A shipped profile runs from a copy in the user's state folder
($XDG_STATE_HOME/devamb/profiles, default ~/.local/state/devamb/profiles), so its `.devamb/`
(control socket, saved state) never lands inside site-packages. The copy is rewritten whenever it
differs from the shipped one: copy it elsewhere to edit it.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED = ("demo",)

_PACKAGE = Path(__file__).resolve().parents[1]  # devamb/


def shipped_source(name: str) -> Path | None:
    """The shipped profile NAME as packaged (or in the checkout's profiles/), if there is one."""
    if name not in SHIPPED:
        return None
    folders = [_PACKAGE / "_profiles"]
    if (_PACKAGE.parent / "pyproject.toml").is_file():  # a checkout (or an editable install)
        folders.append(_PACKAGE.parent / "profiles")
    for folder in folders:
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def shipped_profile(name: str) -> Path | None:
    """The user's copy of the shipped profile NAME (written or refreshed now), else None."""
    source = shipped_source(name)
    if source is None:
        return None
    copy = state_home() / "devamb" / "profiles" / f"{name}.yaml"
    text = source.read_bytes()
    if not copy.is_file() or copy.read_bytes() != text:
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f".{copy.name}.{os.getpid()}")
        partial.write_bytes(text)
        partial.replace(copy)  # atomic: a concurrent `devamb -p demo …` never reads half a file
    return copy
