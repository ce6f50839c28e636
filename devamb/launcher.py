"""Finding, cleaning up after and starting engine processes for a profile."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from devamb.control.client import ControlClient
from devamb.control.protocol import EngineUnavailable, Status
from devamb.workdir import Workdir

READY_TIMEOUT = 20.0


class LaunchError(Exception):
    pass


async def running_status(workdir: Workdir) -> Status | None:
    """The status of the engine answering on this workdir's socket, or None."""
    if not workdir.socket.exists():
        return None
    try:
        async with ControlClient(workdir.socket, timeout=3.0) as client:
            return await client.status()
    except EngineUnavailable:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(workdir: Workdir) -> list[str]:
    """Remove the socket and pid file of an engine that no longer answers; says what it removed."""
    removed: list[str] = []
    if workdir.pid.exists():
        try:
            pid = int(workdir.pid.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if not pid or not pid_alive(pid):
            workdir.pid.unlink(missing_ok=True)
            removed.append(f"pid file of engine {pid} (no longer running)")
    if workdir.socket.exists():
        workdir.socket.unlink(missing_ok=True)
        removed.append(f"stale control socket {workdir.socket}")
    return removed


def spawn_engine(profile: Path, workdir: Workdir, *, reset: bool) -> tuple[subprocess.Popen, int]:
    """Start `devamb up --headless` in its own session, logging to .devamb/engine.log."""
    workdir.ensure()
    with open(workdir.log, "ab") as log_file:
        offset = log_file.tell()
        args = [sys.executable, "-m", "devamb", "up", "--headless", str(profile)]
        if reset:
            args.append("--reset")
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            env={**os.environ, "DEVAMB_CHILD": "1"},
        )
    return proc, offset


async def wait_ready(proc: subprocess.Popen, workdir: Workdir, offset: int) -> Status:
    """Wait until the spawned engine answers with every listener bound; raise with its log."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = _log_since(workdir, offset)
            raise LaunchError(log or f"engine exited with {proc.returncode}")
        status = await running_status(workdir)
        if status is not None and all(s["listening"] for s in status["services"]):
            return status
        await asyncio.sleep(0.05)
    proc.terminate()
    raise LaunchError(
        f"the engine did not become ready within {READY_TIMEOUT:g}s; see {workdir.log}"
    )


async def wait_stopped(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def _log_since(workdir: Workdir, offset: int) -> str:
    try:
        with open(workdir.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
