"""`.devamb/` beside the profile: control socket, pid, log, runtime state."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAX_SOCKET_PATH = 100  # unix socket paths are limited (104 on macOS, 108 on Linux)


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
        private = Path(tempfile.gettempdir()) / f"devamb-{os.getuid()}"
        return private / f"{digest}.sock"

    @property
    def pid(self) -> Path:
        return self.root / "engine.pid"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def state(self) -> Path:
        return self.root / "state.json"
