"""A real terminal for end-to-end tests: one tmux session on a private tmux server socket."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path


class Terminal:
    """One tmux session, alone on its server socket `name` (`tmux -L name`, no user config)."""

    def __init__(self, name: str) -> None:
        self.server = name
        self.target = f"{name}:0"
        self.last_error = ""

    @classmethod
    def fresh(cls, prefix: str = "devamb") -> Terminal:
        """A terminal on a server socket of its own: a server of the previous test that is still
        exiting must not take the next test's session (seen as a blank pane on a loaded
        machine)."""
        return cls(f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.server, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        self.last_error = done.stderr.strip()
        return done.stdout

    def start(self, command: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        """Run `command` in a 120x36 pane in `cwd`, with `env` set in its environment."""
        options = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
        # one invocation: the pane must stay (remain-on-exit) even if the command exits at once
        self.tmux(
            "start-server", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-s", self.server, "-x", "120", "-y", "36", "-c", str(cwd),
            *options,
            command,
        )  # fmt: skip

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.target, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def dead(self) -> bool:
        """The command exited (the pane stays, with its last screen: remain-on-exit)."""
        return self.tmux("display-message", "-p", "-t", self.target, "#{pane_dead}").strip() == "1"

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.target, "#{pane_pid}"))

    def kill(self) -> None:
        self.tmux("kill-server")
