"""Runs an engine in this process until SIGTERM/SIGINT or a shutdown request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from devamb.control.server import ControlServer
from devamb.engine import Engine
from devamb.profile import Profile
from devamb.proxy.listen import ListenError
from devamb.redact import RedactingFilter, Redactor
from devamb.state import RuntimeState
from devamb.workdir import Workdir

log = logging.getLogger("devamb")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop unless DEVAMB_LOOP=asyncio (or uvloop is not installed)."""
    if os.environ.get("DEVAMB_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def configure_logging(profile: Profile, stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(Redactor(profile.secrets)))
    root = logging.getLogger("devamb")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def run_engine(profile: Profile, workdir: Workdir, *, reset: bool) -> int:
    """Blocks until the engine stops; returns the process exit code."""
    configure_logging(profile)
    workdir.ensure()
    if reset and workdir.state.exists():
        workdir.state.unlink()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_serve(profile, workdir))


async def _serve(profile: Profile, workdir: Workdir) -> int:
    engine = Engine(profile, state=RuntimeState(workdir.state))
    try:
        await engine.start(watch=True)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    server = ControlServer(engine, workdir.socket)
    await server.start()
    workdir.pid.write_text(str(os.getpid()))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(engine.shutdown()))
    log.info(
        "devamb engine ready (pid %d, profile %s, control %s)",
        os.getpid(),
        profile.path,
        workdir.socket,
    )
    try:
        await engine.wait_shutdown_requested()
        log.info("stopping")
    finally:
        await engine.stop()
        await server.stop()
        _remove(workdir.pid)
    return 0


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
