"""Where an engine's control socket is, from what a caller has at hand: a project folder, a
profile file, or the socket itself."""

from __future__ import annotations

import os
from pathlib import Path

from devamb.control.workdir import Workdir
from devamb.profile import DEFAULT_PROFILE


def socket_for(where: str | os.PathLike[str] | None = None) -> Path:
    """The control socket of the engine for `where`: a folder (its devamb.yaml), a profile file
    (.yaml/.yml), or a socket path (anything else that exists and is no folder). None: the
    current folder. Raises UnsafeSocketDir when a long path puts the socket in a shared temp
    folder that is not private to this user."""
    path = Path(where) if where is not None else Path.cwd()
    if path.is_dir():
        path = path / DEFAULT_PROFILE
    elif path.suffix not in (".yaml", ".yml"):
        return path  # a socket
    workdir = Workdir.beside(path)
    workdir.check_socket_dir()
    return workdir.socket
