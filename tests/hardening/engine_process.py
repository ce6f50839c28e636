"""A real `devamb up --headless` engine in a subprocess, with its RSS and open fds from /proc."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devamb.control.client import ControlClient
from devamb.control.protocol import EngineUnavailable
from devamb.control.workdir import Workdir

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs Linux /proc (RSS and fd counts)"
)


class EngineProcess:
    """`python -m devamb up --headless devamb.yaml` in `folder`; its log goes to engine.out."""

    def __init__(self, folder: Path, profile: str) -> None:
        self.folder = folder
        self.profile = folder / "devamb.yaml"
        self.profile.write_text(textwrap.dedent(profile))
        self.workdir = Workdir.beside(self.profile)
        self.output = folder / "engine.out"
        self.proc: asyncio.subprocess.Process | None = None
        self.control = ControlClient(self.workdir.socket, timeout=30.0)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> EngineProcess:
        with open(self.output, "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "devamb", "up", "--headless", str(self.profile),
                cwd=self.folder, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"engine exited early:\n{self.log()}")
            try:
                status = await self.control.status()
            except EngineUnavailable:
                status = None
            if status and all(s["listening"] for s in status["services"]):
                return self
            await asyncio.sleep(0.05)
        raise AssertionError(f"engine not ready within {timeout}s:\n{self.log()}")

    async def address(self, service: str) -> tuple[str, int]:
        status = await self.control.status()
        [svc] = [s for s in status["services"] if s["name"] == service]
        host, _, port = svc["listen"].rpartition(":")
        return host, int(port)

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def close(self) -> None:
        await self.control.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
