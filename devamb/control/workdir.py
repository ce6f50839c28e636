"""`.devamb/` beside the profile: control socket, pid, log, runtime state."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAX_SOCKET_PATH = 100  # unix socket paths are limited (104 on macOS, 108 on Linux)


class UnsafeSocketDir(Exception):
    """The shared temp folder for control sockets is not private to this user."""


def fallback_socket_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"devamb-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """Create `path` 0700, or check that the one there is ours and closed to others.

    As tmux does for /tmp/tmux-UID: another user who created the folder first (or made it
    world-writable) could replace our socket with theirs, so such a folder is refused.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    problem = ""
    if not stat.S_ISDIR(info.st_mode):
        problem = "it is not a directory"
    elif info.st_uid != os.getuid():
        problem = f"it belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
    elif info.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(info.st_mode):04o}: others may enter it"
    if problem:
        raise UnsafeSocketDir(
            f"refusing to use {path} for the control socket: {problem}; remove it (or set "
            f"TMPDIR to a private folder) and try again"
        )
    return path


@dataclass(frozen=True)
class Workdir:
    root: Path

    @classmethod
    def beside(cls, profile: Path) -> Workdir:
        return cls(profile.resolve().parent / ".devamb")

    def ensure(self) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)

    @property
    def socket(self) -> Path:
        path = self.root / "engine.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        # Deep project folders: keep the socket in a private folder under the temp dir instead.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return fallback_socket_dir() / f"{digest}.sock"

    def check_socket_dir(self) -> None:
        """Raise UnsafeSocketDir if the socket lives in a shared temp folder not private to us."""
        if self.socket.parent == fallback_socket_dir() and self.socket.parent.exists():
            private_dir(self.socket.parent)

    @property
    def pid(self) -> Path:
        return self.root / "engine.pid"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def state(self) -> Path:
        return self.root / "state.json"


def socket_answers(path: Path) -> bool:
    """Whether some process accepts connections on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
