"""Where an engine's control socket is, from what a caller has at hand: a project folder, a
profile file, or the socket itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from devamb.control.workdir import Workdir
from devamb.profile import DEFAULT_PROFILE


def socket_for(where: str | os.PathLike[str] | None = None) -> Path:
    """The control socket of the engine for `where`: a socket (a unix socket, or a path
    ending in .sock), a folder (its devamb.yaml), or a profile file. None: the current
    folder. Raises UnsafeSocketDir when a long path puts the socket in a shared temp folder
    that is not private to this user."""
    path = Path(where) if where is not None else Path.cwd()
    if path.suffix == ".sock" or _is_socket(path):
        return path
    if path.is_dir():
        path = path / DEFAULT_PROFILE
    workdir = Workdir.beside(path)
    workdir.check_socket_dir()
    return workdir.socket


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False
