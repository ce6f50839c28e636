"""Runs an engine in this process until SIGTERM/SIGINT/SIGHUP, a shutdown request, or (with a
lifeline) the end of the process that started it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from asyncio import ensure_future
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from devamb.control.server import ControlServer, SocketInUse
from devamb.control.workdir import (
    EngineLocked,
    UnsafeSocketDir,
    Workdir,
    lock_engine,
    unlock_engine,
)
from devamb.engine import collector
from devamb.engine.assembly import Profile
from devamb.engine.core import Engine
from devamb.engine.state import RuntimeState
from devamb.inspect.masking import RedactingFilter, Redactor
from devamb.proxy.listen import ListenError
from devamb.toxiproxy.address import parse_api_address

if TYPE_CHECKING:
    from devamb.toxiproxy.api import ToxiproxyServer

log = logging.getLogger("devamb")
_background: set[asyncio.Future[object]] = set()  # keeps shutdown tasks alive until done


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop unless DEVAMB_LOOP=asyncio (or uvloop is not installed)."""
    if os.environ.get("DEVAMB_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def configure_logging(profile: Profile, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(Redactor(profile.secrets)))
    root = logging.getLogger("devamb")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def run_engine(
    profile: Profile,
    workdir: Workdir,
    *,
    reset: bool,
    grace: float | None = None,
    lifeline: bool = False,
    toxiproxy_api: str | None = None,
) -> int:
    """Blocks until the engine stops; returns the process exit code.

    `grace`: seconds a stop drains exchanges in flight (default: the longest service timeout).
    `lifeline`: stdin is a pipe from the `devamb up` that started this engine for its TUI; when
    that process ends, however it ends (quit, SIGHUP, SIGTERM, crash, SIGKILL), the pipe reaches
    end-of-file and the engine stops with it.
    `toxiproxy_api`: also serve the Toxiproxy-compatible API there (a loopback HOST:PORT);
    default: the profile's `toxiproxy_api:`, if any.
    """
    configure_logging(profile)
    workdir.ensure()
    try:  # before anything is bound or reset: one engine per workdir, even when two start at once
        lock = lock_engine(workdir)
    except EngineLocked as exc:
        log.error("%s", exc)
        return 1
    try:
        if reset and workdir.state.exists():
            workdir.state.unlink()
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            api = toxiproxy_api or profile.toxiproxy_api
            return runner.run(_serve(profile, workdir, grace, lifeline, api))
    finally:
        unlock_engine(workdir, lock)


async def _serve(profile: Profile, workdir: Workdir, grace: float | None, lifeline: bool,
                 toxiproxy_api: str | None = None) -> int:
    workdir.pid.write_text(str(os.getpid()))  # from the start: `down` finds a slow starter too
    try:
        return await _run(profile, workdir, grace, lifeline, toxiproxy_api)
    finally:
        _remove_own_pid(workdir.pid)


async def _run(profile: Profile, workdir: Workdir, grace: float | None, lifeline: bool,
               toxiproxy_api: str | None = None) -> int:
    engine = Engine(profile, state=RuntimeState(workdir.state))
    engine.grace, engine.drain_to_timeout = grace, True
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in signals:  # a stop requested while starting is honoured once started
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # e.g. SIGHUP under nohup: the user asked for it to be ignored
        loop.add_signal_handler(sig, _on_stop_signal, engine, sig)
    if lifeline:
        _watch_lifeline(loop, engine)
    log.info("starting %d services from %s", len(profile.services), profile.path)
    try:
        await engine.start(watch=True)
    except ListenError as exc:
        log.error("%s", exc)
        return 1
    server = ControlServer(engine, workdir.socket)
    try:
        await server.start()
    except (UnsafeSocketDir, SocketInUse) as exc:
        log.error("%s", exc)
        await engine.stop(0)
        return 1
    toxiproxy: ToxiproxyServer | None = None
    if toxiproxy_api is not None:
        from devamb.toxiproxy.api import ToxiproxyServer  # aiohttp's server: only when asked

        address = parse_api_address(toxiproxy_api)
        toxiproxy = ToxiproxyServer(engine, address.host, address.port)
        try:
            await toxiproxy.start()
        except OSError as exc:
            log.error("the Toxiproxy API cannot listen on %s: %s", toxiproxy_api,
                      exc.strerror or exc)
            await engine.stop(0)
            await server.stop()
            return 1
    log.info(
        "devamb engine ready (pid %d, profile %s, control %s)",
        os.getpid(),
        profile.path,
        workdir.socket,
    )
    collector.settle()  # what the start made lives on: out of the collector's walks
    try:
        await engine.wait_shutdown_requested()
        log.info("stopping")
    finally:
        if toxiproxy is not None:
            await toxiproxy.stop()
        await engine.stop()
        await server.stop()
    return 0


def _on_stop_signal(engine: Engine, sig: signal.Signals) -> None:
    """The first stop signal drains exchanges in flight for the grace; one more while the
    engine is stopping (a second Ctrl-C, or a signal during a drain asked for otherwise:
    `down`, the end of the TUI) cuts them now."""
    if engine.shutdown_requested:
        log.info("%s while stopping: cutting the exchanges still in flight now", sig.name)
        engine.cut_now()
        return
    _background.add(ensure_future(engine.shutdown()))


def _watch_lifeline(loop: asyncio.AbstractEventLoop, engine: Engine) -> None:
    """Stop the engine when stdin (the pipe from the TUI's process) reaches end-of-file."""

    def readable() -> None:
        try:
            data = os.read(0, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            log.info("the devamb up that started this engine has ended; stopping")
            _background.add(ensure_future(engine.shutdown()))

    os.set_blocking(0, False)
    loop.add_reader(0, readable)


def _remove_own_pid(path: Path) -> None:
    """Remove the pid file if it still names this process (never another engine's)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()
