"""An engine process for a test suite: started for a profile, with its files in a folder of
the suite's own, stopped however the suite ends.

    engine = EngineProcess("devamb.yaml", tmp_folder).start()
    engine.client.faults.add("payments", "abort", status=503)
    ...
    engine.stop()

The engine's stdin is a pipe only this process holds (as `devamb up` does for its TUI): if the
suite dies without stopping it (SIGKILL, a crash), the pipe closes and the engine stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from devamb.cli.launcher import LaunchError, Spawned, wait_ready
from devamb.client import Client, ControlError
from devamb.control.workdir import Workdir

T = TypeVar("T")
STOP_WAIT = 15.0  # seconds a stopping engine gets before SIGKILL


def _blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end from sync code, even when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class EngineProcess:
    """One engine for `profile`, its control socket and log under `folder`. `free_ports`:
    every listener binds a free port (read them with `client.address(service)`); else the
    profile's ports."""

    def __init__(
        self, profile: str | os.PathLike[str], folder: str | os.PathLike[str],
        free_ports: bool = True,
    ) -> None:
        self.profile = Path(profile).resolve()
        self.workdir = Workdir(Path(folder).resolve() / ".devamb")
        self.free_ports = free_ports
        self._spawned: Spawned | None = None
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the engine is not started")
        return self._client

    @property
    def pid(self) -> int | None:
        return self._spawned.pid if self._spawned is not None else None

    @property
    def log(self) -> Path:
        return self.workdir.log

    def start(self) -> EngineProcess:
        """Start the engine and wait until every listener is bound; LaunchError with the
        engine's own words (a profile problem, a port in use) if it cannot start."""
        self.workdir.root.parent.mkdir(parents=True, exist_ok=True)
        self.workdir.ensure()
        args = [sys.executable, "-m", "devamb.testing.serve", str(self.profile),
                str(self.workdir.root)] + (["--free-ports"] if self.free_ports else [])
        read_end, lifeline = os.pipe()
        with open(self.workdir.log, "ab") as log:
            offset = log.tell()
            try:
                proc = subprocess.Popen(
                    args, stdin=read_end, stdout=log, stderr=log, start_new_session=True,
                    cwd=self.profile.parent, env={**os.environ, "DEVAMB_CHILD": "1"},
                )
            except BaseException:
                os.close(lifeline)
                raise
            finally:
                os.close(read_end)
        self._spawned = Spawned(proc, offset, lifeline)
        try:
            _blocking(wait_ready(self._spawned, self.workdir))
        except BaseException:
            self.stop()
            raise
        self._client = Client(self.workdir.socket)
        return self

    @property
    def running(self) -> bool:
        return self._spawned is not None and self._spawned.proc.poll() is None

    def stop(self) -> None:
        """Stop the engine now (exchanges in flight are cut) and wait for it; SIGKILL if it
        does not end within STOP_WAIT seconds. Safe to call twice."""
        spawned, self._spawned = self._spawned, None
        if self._client is not None:
            if spawned is not None and spawned.proc.poll() is None:
                # one that does not answer still ends with its lifeline, or SIGKILL
                with contextlib.suppress(ControlError):
                    self._client.shutdown(grace=0)
            self._client.close()
            self._client = None
        if spawned is None:
            return
        if spawned.lifeline is not None:
            os.close(spawned.lifeline)
            spawned.lifeline = None
        try:
            spawned.proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            spawned.proc.kill()
            spawned.proc.wait()


__all__ = ["EngineProcess", "LaunchError"]
