"""The devamb command line. Exit codes: 0 ok, 1 bad input, 2 usage, 3 no engine running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devamb import __version__
from devamb.cli.common import (
    EXIT_NO_ENGINE,
    call,
    client_for,
    command_for,
    explain_unavailable,
    fail,
    load,
    profile_option,
    profile_path,
    run,
)
from devamb.cli.lazy import LazyGroup
from devamb.control.protocol import ControlError, EngineUnavailable, Status
from devamb.control.workdir import UnsafeSocketDir, Workdir
from devamb.profile import DEFAULT_PROFILE, ProfileError, display_path
from devamb.profile.units import parse_duration

if TYPE_CHECKING:  # the launcher and the control client (asyncio): imported by the commands
    from devamb.cli.launcher import Spawned
    from devamb.control.client import ControlClient

TOXIPROXY_DEFAULT = "127.0.0.1:8474"  # devamb.toxiproxy.address.DEFAULT (a test checks)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="devamb")
@profile_option
def main(profile_name: str | None) -> None:
    """devamb: a local ambassador for your app's dependencies."""


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing devamb.yaml.")
def init(force: bool) -> None:
    """Write a commented devamb.yaml here and keep .devamb/ out of git."""
    from devamb.cli.init_template import TEMPLATE
    from devamb.cli.schema_cmd import SCHEMA_FILE, modeline, schema_text

    target = Path.cwd() / DEFAULT_PROFILE
    if target.exists() and not force:
        fail(f"{DEFAULT_PROFILE} exists already (use --force to overwrite)")
    (Path.cwd() / SCHEMA_FILE).write_text(schema_text())  # editors check the profile with it
    target.write_text(modeline(f"./{SCHEMA_FILE}") + TEMPLATE.format(name=Path.cwd().name))
    gitignore = Path.cwd() / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if ".devamb/" not in lines and ".devamb" not in lines:
        with gitignore.open("a") as f:
            if lines and lines[-1] != "":
                f.write("\n")
            f.write(".devamb/\n")
    click.echo(f"wrote {DEFAULT_PROFILE} and {SCHEMA_FILE} (its JSON Schema, for editors); "
               f".devamb/ is in .gitignore. Next: devamb up")


class Duration(click.ParamType):
    """250ms, 2s, 1m, or a bare number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(float(value))  # a bare number: seconds
        except ValueError:
            pass
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


GRACE_HELP = (
    "How long a stop lets exchanges in flight finish before cutting them, e.g. 10s "
    "(default: the profile's longest service timeout)."
)


@main.command()
@click.argument("profile_name", metavar="[PROFILE]", required=False)
@click.option("-p", "--profile", "option_name", metavar="PROFILE",
              help="Same as the PROFILE argument (as every other command takes it).")
def validate(profile_name: str | None, option_name: str | None) -> None:
    """Check a profile; problems print as FILE:LINE:COL: message."""
    if profile_name and option_name and profile_name != option_name:
        raise click.UsageError(f"two profiles given: {profile_name} and -p {option_name}")
    profile = load(profile_path(profile_name or option_name))
    for warning in profile.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{display_path(profile.path)}: ok ({len(profile.services)} services)")


def _say(message: str) -> None:
    click.echo(f"devamb: {message}", err=True)


def _has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _check_socket_dir(workdir: Workdir) -> None:
    try:
        workdir.check_socket_dir()
    except UnsafeSocketDir as exc:
        fail(str(exc))


def _api_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from devamb.toxiproxy.address import parse_api_address

    try:
        return str(parse_api_address(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("profile_name", metavar="[PROFILE]", required=False)
@click.option("--headless", is_flag=True, help="Run the engine in the foreground, no TUI.")
@click.option("--detach", is_flag=True, help="Start the engine in the background and return.")
@click.option("--reset", is_flag=True, help="Forget active targets and fault toggles.")
@click.option("--demo", is_flag=True,
              help="Run the demo profile shipped with devamb (the same as PROFILE `demo`).")
@click.option("--grace", type=Duration(), metavar="DURATION", help=GRACE_HELP)
@click.option("--lifeline", is_flag=True, hidden=True,
              help="Internal: stop when stdin (a pipe from the TUI's process) closes.")
@click.option("--toxiproxy-api", "toxiproxy_api", is_flag=False, flag_value=TOXIPROXY_DEFAULT,
              default=None, metavar="[HOST:PORT]", callback=_api_address,
              help=f"Also serve a Toxiproxy-compatible API (default {TOXIPROXY_DEFAULT}, "
                   f"loopback only).")
def up(
    profile_name: str | None,
    headless: bool,
    detach: bool,
    reset: bool,
    demo: bool,
    grace: float | None,
    lifeline: bool,
    toxiproxy_api: str | None,
) -> None:
    """Start the ambassadors for PROFILE and open the TUI.

    The engine `up` starts for its TUI ends with the TUI, however the TUI ends (q, closing the
    terminal, a signal, a crash). Without a terminal, `up` runs the engine headless instead.
    """
    from devamb.cli.launcher import (
        LaunchError,
        clean_stale,
        exec_engine,
        find_engine,
        other_engine,
        spawn_engine,
        wait_ready,
    )

    if headless and detach:
        raise click.UsageError("--headless and --detach exclude each other")
    if demo:
        if profile_name and profile_name != "demo":
            raise click.UsageError(f"--demo and the profile {profile_name} exclude each other")
        profile_name = "demo"
    path = profile_path(profile_name)
    if headless:  # the engine's own process reads the profile (exec_engine)
        _say(f"loading profile {path}")  # the first line of engine.log while a big one loads
    else:
        load(path)  # its problems are said before anything starts
    workdir = Workdir.beside(path)
    _check_socket_dir(workdir)
    found = run(find_engine(workdir))
    down_command = command_for(profile_name, "down")
    if found.status is not None:
        _already_running(found.status, workdir, path, profile_name, headless or detach)
        return
    if found.pid is not None:
        fail(f"engine pid {found.pid} is alive but not answering ({found.problem}); "
             f"'{down_command}' stops it")
    for removed in clean_stale(workdir):
        _say(f"cleaned up {removed}")
    if not headless and not detach and not _has_terminal():
        _say("no terminal (stdin or stdout is not a TTY), so no TUI: running the engine in "
             "the foreground as with --headless (Ctrl-C or SIGTERM stops it); "
             "'devamb up --detach' runs it in the background instead")
        headless = True
    if headless:
        exec_engine(path, reset=reset, grace=grace, lifeline=lifeline,
                    toxiproxy_api=toxiproxy_api)
    spawned = spawn_engine(path, workdir, reset=reset, grace=grace, owned=not detach,
                           toxiproxy_api=toxiproxy_api)
    try:
        status = run(wait_ready(spawned, workdir, progress=_say))
    except LaunchError as exc:
        other = run(other_engine(workdir, spawned))  # another `up` started one at the same time
        if other is None:
            fail(str(exc))
            return
        _already_running(other, workdir, path, profile_name, detach)
        return
    except KeyboardInterrupt:
        spawned.proc.kill()
        raise
    if detach:
        _print_listeners(status)
        click.echo(f"engine pid {spawned.pid}; stop it with: {down_command}")
        return
    _open_tui(workdir, path, owns_engine=True, spawned=spawned, grace=grace,
              toxiproxy_api=toxiproxy_api)


def _already_running(
    status: Status, workdir: Workdir, path: Path, profile_name: str | None, no_tui: bool
) -> None:
    """An engine answers for this profile already: fail without a TUI, else attach to it."""
    from devamb.cli.launcher import find_engine

    pid = status["engine"]["pid"]
    down_command = command_for(profile_name, "down")
    if no_tui or not _has_terminal():
        fail(f"an engine is already running for {display_path(path)} (pid {pid}); "
             f"use '{command_for(profile_name, 'attach')}' or '{down_command}'")
    _say(f"an engine is already running for {display_path(path)} (pid {pid}): attaching "
         f"to it; quitting leaves it running ('{down_command}' stops it)")
    _open_tui(workdir, path, owns_engine=False, announce_attach=True)
    if run(find_engine(workdir)).pid is not None:
        _say(f"engine pid {pid} is still running; '{down_command}' stops it")


def _open_tui(
    workdir: Workdir,
    path: Path,
    *,
    owns_engine: bool,
    spawned: Spawned | None = None,
    grace: float | None = None,
    announce_attach: bool = False,
    toxiproxy_api: str | None = None,
) -> None:
    """The TUI on the engine of this workdir; if the engine dies, it can start a new one.

    Engines this TUI owns are tied to this process by their lifeline pipe: they stop when it
    ends, whether the TUI quits, crashes, or the process is killed or hung up on.
    """
    from devamb.cli.launcher import clean_stale, spawn_engine, wait_ready
    from devamb.control.client import ControlClient

    try:  # the wheel ships ui/ as devamb_ui (no top-level `ui` in site-packages)
        from devamb_ui.app import run_tui  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as missing:  # a checkout: the repo's ui/ folder
        if missing.name != "devamb_ui":
            raise
        from ui.app import run_tui

    owned: list[Spawned] = [spawned] if spawned is not None else []

    async def restart() -> ControlClient:
        clean_stale(workdir)
        new = spawn_engine(path, workdir, reset=False, grace=grace, owned=owns_engine,
                           toxiproxy_api=toxiproxy_api)
        if owns_engine:
            owned.append(new)
        await wait_ready(new, workdir)  # a LaunchError is shown in the dialog
        return ControlClient(workdir.socket)

    try:
        run_tui(
            ControlClient(workdir.socket),
            owns_engine=owns_engine,
            restart=restart,
            announce_attach=announce_attach,
        )
    finally:
        for engine in owned:
            _end_owned(engine, workdir, _profile_grace(path) if grace is None else grace)


def _end_owned(spawned: Spawned, workdir: Workdir, grace: float) -> None:
    """Close the lifeline (the engine stops, draining what is in flight for up to `grace`) and
    wait for it as `down` does: SIGKILL if it stays silent (stopped, or stuck) for a few
    seconds or outlives the grace. Ctrl-C while waiting cuts the drain now (SIGTERM, then
    SIGKILL if it stays)."""
    from devamb.cli.launcher import LaunchError, clean_stale, terminate_engine, watch_stop

    if spawned.lifeline is not None:
        os.close(spawned.lifeline)
        spawned.lifeline = None
    with contextlib.suppress(ProcessLookupError):
        os.kill(spawned.pid, signal.SIGCONT)  # a stopped engine must see the end of its lifeline
    try:
        spawned.proc.wait(timeout=3.0)
        return
    except subprocess.TimeoutExpired:
        pass
    _say(f"stopping engine pid {spawned.pid}: exchanges in flight may take up to "
         f"{grace:g}s to finish (Ctrl-C cuts them now)")
    ended = partial(_reaped, spawned.proc)
    try:
        try:
            how = run(watch_stop(spawned.pid, grace, workdir, ended))
        except KeyboardInterrupt:
            how = run(terminate_engine(spawned.pid, 0.0, workdir, ended=ended))
    except LaunchError as exc:
        _say(str(exc))
        return
    clean_stale(workdir)
    if how == "killed":
        _say(f"killed engine pid {spawned.pid}")


def _reaped(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


def _print_listeners(status: Status) -> None:
    for service in status["services"]:
        click.echo(
            f"{service['name']:<16} {service['protocol']:<4} {service['listen']:<22} "
            f"-> {service['target']}"
        )


@main.command()
@profile_option
def attach(profile_name: str | None) -> None:
    """Open the TUI on the running engine (quitting leaves it running)."""
    from devamb.cli.launcher import find_engine

    path = profile_path(profile_name)
    workdir = Workdir.beside(path)
    _check_socket_dir(workdir)
    found = run(find_engine(workdir))
    if found.status is None:
        fail(explain_unavailable(profile_name, EngineUnavailable(found.problem)), EXIT_NO_ENGINE)
    _open_tui(workdir, path, owns_engine=False)


@main.command()
@profile_option
@click.option("--web", is_flag=True,
              help="Serve the TUI to a browser on 127.0.0.1, with a token in the URL it prints.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, metavar="PORT",
              help="With --web: the port (default: a free one).")
def ui(profile_name: str | None, web: bool, port: int) -> None:
    """Open the TUI on the running engine, in this terminal or (--web) in a browser."""
    from devamb.cli.launcher import find_engine

    path = profile_path(profile_name)
    workdir = Workdir.beside(path)
    _check_socket_dir(workdir)
    found = run(find_engine(workdir))
    if found.status is None:
        fail(explain_unavailable(profile_name, EngineUnavailable(found.problem)), EXIT_NO_ENGINE)
    if not web:
        _open_tui(workdir, path, owns_engine=False)
        return
    try:
        from devamb.cli.web_ui import WebUI, attach_command
    except ImportError:
        fail("'devamb ui --web' needs textual-serve: pip install 'devamb[web]'")
        return
    WebUI(attach_command(path), port=port).serve()


@main.command()
@profile_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, stable for scripts.")
def status(profile_name: str | None, as_json: bool) -> None:
    """Services, listeners, active targets and counters."""
    data: Status = run(call(profile_name, "status"))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from devamb.cli.output import print_status

    print_status(data)


@main.command()
@profile_option
@click.argument("service")
@click.argument("target")
@click.option("--drain", "on_switch", flag_value="drain", default=None,
              help="Close each connection to the old target at its next safe point "
                   "(postgres, redis).")
@click.option("--close", "on_switch", flag_value="close",
              help="Reset the connections to the old target now (tcp, postgres, redis).")
def switch(profile_name: str | None, service: str, target: str, on_switch: str | None) -> None:
    """Re-point SERVICE at TARGET; exchanges in flight finish where they started. Open TCP
    connections follow the service's `on_switch` unless --drain or --close says otherwise."""
    run(call(profile_name, "switch", service, target, on_switch))
    click.echo(f"{service} -> {target}")


@main.command()
@profile_option
@click.option("--json", "as_json", is_flag=True, help="One exchange per line.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing exchanges as they complete.")
@click.option("--limit", "-n", default=50, show_default=True, help="How many recent exchanges.")
@click.option("--filter", "filter_text", metavar="EXPR", help="e.g. '~s payments & ~c 5xx'.")
@click.option("--clear", is_flag=True, help="Forget the recorded exchanges.")
def traffic(
    profile_name: str | None,
    as_json: bool,
    follow: bool,
    limit: int,
    filter_text: str | None,
    clear: bool,
) -> None:
    """Recorded exchanges, oldest first.

    Filters: ~m METHOD, ~u REGEX (url), ~c CODE or 5xx, ~s SERVICE, ~t TARGET, ~h REGEX
    (headers), ~b REGEX (bodies), ~e (errors), ~d >500ms; combined with !, &, | and ( ).
    """
    from devamb.cli.output import print_exchange

    async def go() -> None:
        try:
            async with client_for(profile_name) as client:
                if clear:
                    await client.clear_exchanges()
                    click.echo("recorded exchanges cleared")
                    return
                for exchange in await client.exchanges(limit, filter_text):
                    print_exchange(exchange, as_json)
                if follow:
                    async for event in client.events(filter_text):
                        if event["type"] == "exchange":  # Event declares only type and time
                            # (control/protocol.py): the "exchange" key is not in its TypedDict
                            print_exchange(event["exchange"], as_json)  # type: ignore[typeddict-item]
        except EngineUnavailable as exc:
            fail(explain_unavailable(profile_name, exc), exc.code)
        except ControlError as exc:
            fail(exc.message, exc.code)

    with contextlib.suppress(KeyboardInterrupt):
        run(go())


@main.command()
@profile_option
@click.option("--grace", type=Duration(), metavar="DURATION", help=GRACE_HELP)
def down(profile_name: str | None, grace: float | None) -> None:
    """Stop the running engine: exchanges in flight get the grace to finish, then are cut.

    An engine that does not answer (stopped, or stuck) gets SIGTERM, then SIGKILL if it stays
    silent for 5 s or outlives the grace by 5 s; `down` ends with no engine and no stale files.
    """
    from devamb.cli.launcher import (
        LaunchError,
        clean_stale,
        find_engine,
        terminate_engine,
        wait_stopped,
    )

    path = profile_path(profile_name)
    workdir = Workdir.beside(path)
    _check_socket_dir(workdir)
    found = run(find_engine(workdir))
    if found.pid is None:
        for removed in clean_stale(workdir):
            _say(f"cleaned up {removed}")
        fail(explain_unavailable(profile_name, EngineUnavailable(found.problem)), EXIT_NO_ENGINE)
        return
    pid = found.pid
    drained = found.status is not None and run(_drain(workdir, grace))
    if drained and run(wait_stopped(pid)):
        clean_stale(workdir)
        click.echo(f"stopped engine {pid}")
        return
    if drained:
        _say(f"engine pid {pid} did not exit after its drain")
        wait = 0.0
    else:
        _say(f"engine pid {pid} is alive but not answering "
             f"({found.problem or 'it stopped answering'})")
        wait = grace if grace is not None else _profile_grace(path)
    try:
        how = run(terminate_engine(pid, wait, workdir, _say))
    except LaunchError as exc:
        fail(str(exc))
        return
    for removed in clean_stale(workdir):
        _say(f"cleaned up {removed}")
    click.echo(f"{how} engine {pid}")


async def _drain(workdir: Workdir, grace: float | None) -> bool:
    """Ask the engine to stop and say what its drain did; False if it stopped answering."""
    from devamb.control.client import ControlClient

    async with ControlClient(workdir.socket) as client:
        try:
            first = await client.shutdown(grace) or {}
        except EngineUnavailable:
            return False
        in_flight: dict[str, int] = first.get("in_flight") or {}
        if in_flight:
            _say(f"waiting up to {first.get('grace', 0):g}s for {_exchanges(in_flight)} "
                 f"in flight (--grace sets how long)")
        try:  # a second request waits for the end of the drain and hears what was cut
            report = await client.shutdown(first.get("grace"), wait=True) or {}
        except EngineUnavailable:
            return True  # it finished before we asked: nothing to report
        if report.get("cut"):
            _say(f"cut {_exchanges(report['cut'])} still in flight after "
                 f"{report.get('grace', 0):g}s")
    return True


def _exchanges(per_service: dict[str, int]) -> str:
    total = sum(per_service.values())
    where = ", ".join(f"{name} {n}" for name, n in sorted(per_service.items()))
    return f"{total} exchange{'s' if total != 1 else ''} ({where})"


def _profile_grace(path: Path) -> float:
    """The profile's default drain (its longest service timeout), or 30 s if it cannot load."""
    try:
        from devamb.engine.assembly import load_profile  # the engine: only when needed

        profile = load_profile(path)
    except (ProfileError, OSError):
        return 30.0
    return max((s.timeout for s in profile.services.values()), default=0.0)

