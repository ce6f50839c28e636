"""Finding, cleaning up after, starting and stopping engine processes for a profile.

Rule: the socket and pid file of a live engine are never removed, even when it does not answer
(stopped with SIGSTOP, or its event loop is stuck); only `stop_engine` ends such an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

from devamb.control.protocol import EngineUnavailable, Status
from devamb.control.workdir import (
    Workdir,
    lock_holder,
    pid_alive,
    remove_stale_lock,
    socket_answers,
)

STALL_TIMEOUT = 30.0  # a starting engine that shows no progress this long is given up on
START_LIMIT = 600.0  # ... and one that keeps busy but never gets ready
PROGRESS_EVERY = 5.0  # seconds between "still starting" messages
KILL_WAIT = 5.0  # seconds after SIGTERM's drain before SIGKILL


class LaunchError(Exception):
    pass


@dataclass
class Found:
    """What is known about the engine of a workdir."""

    status: Status | None = None  # it answers
    pid: int | None = None  # a live engine process (answering or not)
    problem: str = ""  # why it does not answer, when it is alive

    @property
    def answering(self) -> bool:
        return self.status is not None


async def find_engine(workdir: Workdir, timeout: float = 3.0) -> Found:
    """The engine answering on this workdir's socket, or the live process that does not."""
    if workdir.socket.exists():
        from devamb.control.client import ControlClient  # not in an engine starting afresh

        try:
            async with ControlClient(workdir.socket, timeout=timeout) as client:
                status = await client.status()
            return Found(status, status["engine"]["pid"])
        except EngineUnavailable as exc:
            problem = exc.message
    else:
        problem = f"it has no control socket at {workdir.socket}"
    pid = live_pid(workdir)
    return Found(None, pid, problem if pid else "")


async def running_status(workdir: Workdir) -> Status | None:
    """The status of the engine answering on this workdir's socket, or None."""
    return (await find_engine(workdir)).status


def _is_engine(pid: int) -> bool:
    """Whether `pid` is a devamb process (not a recycled pid): from /proc, or `ps` without it
    (macOS), so a pid file left by a crash never gets another program signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False  # /proc exists and the pid is gone
        cmdline = _ps_command(pid)
    except OSError:
        return True
    return b"devamb" in cmdline


def _ps_command(pid: int) -> bytes:
    try:
        return subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="], capture_output=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return b"devamb"  # cannot tell: trust the pid file, as before


def read_pid(workdir: Workdir) -> int | None:
    try:
        return int(workdir.pid.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def live_pid(workdir: Workdir) -> int | None:
    """The pid in the pid file, if that process is alive and is a devamb engine."""
    pid = read_pid(workdir)
    return pid if pid and pid_alive(pid) and _is_engine(pid) else None



def clean_stale(workdir: Workdir) -> list[str]:
    """Remove the socket and pid file of an engine that is gone; says what it removed.

    Nothing is removed while the engine process lives or something accepts on the socket.
    """
    if live_pid(workdir):
        return []
    remove_stale_lock(workdir)  # only when no process holds it (a killed engine's)
    removed: list[str] = []
    if workdir.pid.exists():
        pid = read_pid(workdir)
        workdir.pid.unlink(missing_ok=True)
        removed.append(f"pid file of engine {pid} (no longer running)")
    if workdir.socket.exists() and not socket_answers(workdir.socket):
        workdir.socket.unlink(missing_ok=True)
        removed.append(f"stale control socket {workdir.socket}")
    return removed


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    offset: int  # where this engine's lines start in engine.log
    lifeline: int | None = None  # write end of the pipe that ends the engine when closed

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn_engine(
    profile: Path,
    workdir: Workdir,
    *,
    reset: bool,
    grace: float | None = None,
    owned: bool = False,
    toxiproxy_api: str | None = None,
) -> Spawned:
    """Start `devamb up --headless` in its own session, logging to .devamb/engine.log.

    `owned`: the engine's stdin is a pipe whose write end this process keeps (never inherited
    by other children); when this process ends, however it ends, the engine stops too.
    """
    workdir.ensure()
    args = [sys.executable, "-m", "devamb", "up", "--headless", str(profile)]
    if reset:
        args.append("--reset")
    if grace is not None:
        args += ["--grace", f"{grace:g}s"]
    if toxiproxy_api is not None:
        args += ["--toxiproxy-api", toxiproxy_api]
    stdin: int = subprocess.DEVNULL
    lifeline = None
    if owned:
        args.append("--lifeline")
        stdin, lifeline = os.pipe()
    with open(workdir.log, "ab") as log_file:
        offset = log_file.tell()
        try:
            proc = subprocess.Popen(
                args,
                stdin=stdin,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                env={**os.environ, "DEVAMB_CHILD": "1"},
            )
        finally:
            if owned:
                os.close(stdin)
    return Spawned(proc, offset, lifeline)


def exec_engine(
    profile: Path,
    *,
    reset: bool,
    grace: float | None = None,
    lifeline: bool = False,
    toxiproxy_api: str | None = None,
) -> NoReturn:
    """Become the engine: exec `python -m devamb.engine PROFILE ...` in this process's place
    (same pid, stdin, stdout and interpreter options), which does not carry the CLI's code."""
    args = [sys.executable, *interpreter_options(), "-m", "devamb.engine", str(profile)]
    if reset:
        args.append("--reset")
    if grace is not None:
        args += ["--grace", repr(grace)]
    if lifeline:
        args.append("--lifeline")
    if toxiproxy_api is not None:
        args += ["--toxiproxy-api", toxiproxy_api]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, args)


def interpreter_options() -> list[str]:
    """The options this Python was started with (`-X importtime`, `-W error`, ...): what
    sys.orig_argv holds before `-m devamb` or the script, and its arguments."""
    given = len(sys.argv) - 1  # the arguments after the program
    head = sys.orig_argv[: len(sys.orig_argv) - given] if given else list(sys.orig_argv)
    if len(head) >= 3 and head[-2] == "-m":
        return head[1:-2]
    return head[1:-1]  # the script (the `devamb` entry point), or `-mdevamb`


async def wait_ready(
    spawned: Spawned, workdir: Workdir, progress: Callable[[str], None] | None = None
) -> Status:
    """Wait until the spawned engine answers with every listener bound; raise with its log.

    A slow start (a huge mock file) is waited for as long as the engine shows progress (its
    log grows or it uses CPU); `progress` hears what it is doing every few seconds.
    """
    proc = spawned.proc
    started = last_progress = last_said = time.monotonic()
    mark = _progress_mark(proc.pid, workdir)
    while True:
        if proc.poll() is not None:
            log = _log_since(workdir, spawned.offset)
            raise LaunchError(log or f"engine exited with {proc.returncode}")
        status = await running_status(workdir)
        ours = status is not None and status["engine"]["pid"] == proc.pid  # not a rival's
        if status is not None and ours and all(s["listening"] for s in status["services"]):
            return status
        now = time.monotonic()
        current = _progress_mark(proc.pid, workdir)
        if current != mark:
            mark, last_progress = current, now
        if now - last_progress > STALL_TIMEOUT or now - started > START_LIMIT:
            break
        if progress is not None and now - last_said >= PROGRESS_EVERY:
            last_said = now
            doing = _last_line(_log_since(workdir, spawned.offset)) or "loading the profile"
            progress(f"engine pid {proc.pid} still starting ({now - started:.0f}s): {doing}")
        await asyncio.sleep(0.05 if now - started < 2 else 0.25)
    proc.terminate()
    doing = _last_line(_log_since(workdir, spawned.offset)) or "nothing logged"
    why = (
        f"showed no progress for {STALL_TIMEOUT:g}s"
        if time.monotonic() - last_progress > STALL_TIMEOUT
        else f"was not ready after {START_LIMIT:g}s"
    )
    raise LaunchError(
        f"the engine (pid {proc.pid}) {why}, so it was stopped; last log line: {doing}. "
        f"Its log: {workdir.log}"
    )


def _progress_mark(pid: int, workdir: Workdir) -> tuple[int, int]:
    """Something that changes while a starting engine works: its log size and CPU ticks."""
    try:
        size = workdir.log.stat().st_size
    except OSError:
        size = 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        ticks = 0
    return size, ticks


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


async def wait_stopped(pid: int, timeout: float = 10.0) -> bool:
    return await _wait_ended(partial(_pid_ended, pid), timeout)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


async def terminate_engine(
    pid: int,
    grace: float,
    workdir: Workdir,
    say: Callable[[str], None] | None = None,
    ended: Callable[[], bool] | None = None,
) -> str:
    """SIGTERM (with SIGCONT, as systemd sends, so a stopped engine can act on it), then
    `watch_stop`. Says how it ended: "stopped" or "killed"."""
    try:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return "stopped"
    except PermissionError as exc:
        raise LaunchError(f"engine pid {pid} belongs to another user: not signalled") from exc
    if say is not None:
        say(f"sent SIGTERM to engine pid {pid}; SIGKILL if it stays silent for {KILL_WAIT:g}s "
            f"or is still there in {grace + KILL_WAIT:g}s")
    return await watch_stop(pid, grace, workdir, ended)


async def watch_stop(
    pid: int, grace: float, workdir: Workdir, ended: Callable[[], bool] | None = None
) -> str:
    """Wait for an engine that was asked to stop; SIGKILL it when it stays silent for KILL_WAIT
    seconds (it is not acting on the request: its loop is stuck, or it is stopped) or is still
    there after its drain (`grace`) and KILL_WAIT more. A draining engine answers on its control
    socket, so it gets the whole grace. `ended`: whether it is gone (default: the pid is dead
    or a zombie; the parent of the engine passes its own check, which also reaps it).
    Says how it ended: "stopped" or "killed"."""
    if ended is None:
        ended = partial(_pid_ended, pid)
    start = heard = time.monotonic()
    while time.monotonic() - start < grace + KILL_WAIT:
        if ended():
            return "stopped"
        if await _answers_status(workdir):
            heard = time.monotonic()
        elif time.monotonic() - heard > KILL_WAIT:
            break
        await asyncio.sleep(0.2)
    if await _wait_ended(ended, 0.1):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not await _wait_ended(ended, 10.0):
        raise LaunchError(f"engine pid {pid} survived SIGKILL")
    return "killed"


async def other_engine(workdir: Workdir, spawned: Spawned) -> Status | None:
    """The engine we spawned has exited: if that is because another engine holds the workdir's
    lock (two `up` started at the same instant), that engine's status once it is ready; else
    None. Waited for while it lives and for at most START_LIMIT seconds."""
    holder = lock_holder(workdir)
    if holder is None or holder == spawned.pid:
        return None
    started = time.monotonic()
    while not _pid_ended(holder) and time.monotonic() - started < START_LIMIT:
        status = await running_status(workdir)
        if status is not None and all(s["listening"] for s in status["services"]):
            return status
        await asyncio.sleep(0.1)
    return None


def _pid_ended(pid: int) -> bool:
    return not pid_alive(pid) or _is_zombie(pid)


async def _wait_ended(ended: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not ended():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _answers_status(workdir: Workdir) -> bool:
    if not workdir.socket.exists():
        return False
    from devamb.control.client import ControlClient

    try:
        async with ControlClient(workdir.socket, timeout=1.0) as client:
            await client.status()
    except EngineUnavailable:
        return False
    return True


def _log_since(workdir: Workdir, offset: int) -> str:
    try:
        with open(workdir.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
