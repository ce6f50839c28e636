"""`.devamb/` beside the profile: control socket, pid, lock, log, runtime state."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MAX_SOCKET_PATH = 100  # unix socket paths are limited (104 on macOS, 108 on Linux)


class EngineLocked(Exception):
    """Another engine process holds this workdir's lock."""

    def __init__(self, path: Path, holder: int | None) -> None:
        self.path, self.holder = path, holder
        who = f"engine pid {holder}" if holder else "another engine"
        super().__init__(f"{who} already holds {path}: an engine is already running here")


class UnsafeSocketDir(Exception):
    """The shared temp folder for control sockets is not private to this user."""


def fallback_socket_dir() -> Path:
    """The private folder for sockets of deep project folders: under the temp dir, or under
    /tmp when the temp dir itself is too deep for a socket path."""
    folder = Path(tempfile.gettempdir()) / f"devamb-{os.getuid()}"
    if len(str(folder)) + len("/0123456789abcdef.sock") > MAX_SOCKET_PATH:
        folder = Path("/tmp") / f"devamb-{os.getuid()}"
    return folder


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
        import hashlib  # only here: its import sets up OpenSSL's digests (0.5 MiB, issue 22)

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
    def lock(self) -> Path:
        return self.root / "engine.lock"

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


def lock_engine(workdir: Workdir, patience: float = 2.0) -> int:
    """Take the workdir's engine lock (an exclusive flock, Linux and macOS) for this process
    and write its pid in it; the returned descriptor holds the lock until `unlock_engine` (or
    until the process ends, however it ends). Raises EngineLocked, naming the holder, when
    another engine has it: two engines started at the same instant cannot both run.

    A holder that names no live process (a `clean_stale` removing a dead engine's lock, or a
    winner that has not written its pid yet) is waited for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fd = _take(workdir.lock)
        except EngineLocked as exc:
            if (exc.holder and pid_alive(exc.holder)) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd


def unlock_engine(workdir: Workdir, fd: int) -> None:
    """Remove the lock file while still holding it, then release it."""
    if _same_file(fd, workdir.lock):
        workdir.lock.unlink(missing_ok=True)
    os.close(fd)


def remove_stale_lock(workdir: Workdir) -> bool:
    """Remove a lock file no process holds (left by a killed engine); whether it did."""
    if not workdir.lock.exists():
        return False
    try:
        fd = _take(workdir.lock)
    except (EngineLocked, OSError):
        return False
    unlock_engine(workdir, fd)
    return True


def lock_holder(workdir: Workdir) -> int | None:
    """The pid written in the lock file (its holder, if the lock is held)."""
    try:
        return int(workdir.lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _take(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise EngineLocked(path, holder) from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the previous holder removed it between our open and our lock: again


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)
