"""Child processes for the benchmark: spawned pinned to a CPU, always stopped at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class StartError(RuntimeError):
    """A child did not start or did not start listening."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix argv with `taskset -c CPU` when pinning is possible (taskset execs: same pid)."""
    if cpu is None or shutil.which("taskset") is None or cpu not in os.sched_getaffinity(0):
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


class Children:
    """Owns every process the benchmark starts; `stop_all` (or leaving the `with`) ends them."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                pinned(argv, cpu),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else {**os.environ, **env},
                cwd=cwd,
                start_new_session=True,  # own process group: we can end it and its children
            )
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    def wait_listening(self, child: Child, ports: Sequence[int], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(ports)
        while pending:
            if child.popen.poll() is not None:
                raise StartError(
                    f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise StartError(f"{child.name} did not listen on {pending} within {timeout:.0f} s")
            pending = [port for port in pending if not accepts(port)]
            if pending:
                time.sleep(0.05)

    def stop(self, child: Child, grace: float = 5.0) -> None:
        if child in self.children:
            self.children.remove(child)
        if child.popen.poll() is None:
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.popen.wait(grace)
        # Forked helpers (socat's per-connection children) may outlive the leader.
        _signal_group(child.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def settle(pid: int, timeout: float = 2.0) -> None:
    """Wait (briefly) until PID has reaped its children, so their CPU time is in its cutime.

    socat forks a child per connection; when wrk stops, they exit all at once, and a child
    reaped between reading its stat and its parent's would be counted in neither.
    """
    deadline = time.monotonic() + timeout
    while child_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of PID, its reaped children and its live descendants."""
    ticks = 0
    for index, proc in enumerate((pid, *descendants(pid))):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            if index == 0:
                return None
            continue
        # utime stime cutime cstime are fields 14-17 of stat(5); cutime/cstime for all: a
        # live descendant's own time is not yet in its parent's cutime.
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def read_status_kib(pid: int, field: str) -> int | None:
    """A `kB` field (VmHWM, VmRSS) of /proc/PID/status, or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """Direct children of PID (nginx's worker under its master)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.extend(int(p) for p in task.read_text().split())
    return pids


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = child_pids(todo.pop())
        found += kids
        todo += kids
    return found


def set_cpus(pid: int, cpus: set[int]) -> None:
    """Move every thread of PID and of its descendants to `cpus`."""
    for proc in (pid, *descendants(pid)):
        for task in Path(f"/proc/{proc}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)


def maps_mention(pid: int, needle: str) -> bool:
    """Whether a shared object whose path contains `needle` is mapped into PID."""
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
