"""The devamb command line. Exit codes: 0 ok, 1 bad input, 2 usage, 3 no engine running."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from devamb import __version__
from devamb.cli_common import (
    EXIT_NO_ENGINE,
    call,
    client_for,
    fail,
    load,
    profile_option,
    profile_path,
    run,
)
from devamb.cli_faults import fault, scenario
from devamb.cli_inspect import export, replay, show
from devamb.cli_mocks import mock, record
from devamb.control.client import ControlClient
from devamb.control.protocol import ControlError, EngineUnavailable, Status
from devamb.init_template import TEMPLATE
from devamb.launcher import (
    LaunchError,
    clean_stale,
    running_status,
    spawn_engine,
    wait_ready,
    wait_stopped,
)
from devamb.profile import (
    DEFAULT_PROFILE,
    display_path,
)
from devamb.workdir import Workdir


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="devamb")
@profile_option
def main(profile_name: str | None) -> None:
    """devamb: a local ambassador for your app's dependencies."""


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing devamb.yaml.")
def init(force: bool) -> None:
    """Write a commented devamb.yaml here and keep .devamb/ out of git."""
    target = Path.cwd() / DEFAULT_PROFILE
    if target.exists() and not force:
        fail(f"{DEFAULT_PROFILE} exists already (use --force to overwrite)")
    target.write_text(TEMPLATE.format(name=Path.cwd().name))
    gitignore = Path.cwd() / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if ".devamb/" not in lines and ".devamb" not in lines:
        with gitignore.open("a") as f:
            if lines and lines[-1] != "":
                f.write("\n")
            f.write(".devamb/\n")
    click.echo(f"wrote {DEFAULT_PROFILE}; .devamb/ is in .gitignore. Next: devamb up")


@main.command()
@click.argument("profile_name", metavar="[PROFILE]", required=False)
def validate(profile_name: str | None) -> None:
    """Check a profile; problems print as FILE:LINE:COL: message."""
    profile = load(profile_path(profile_name))
    for warning in profile.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{display_path(profile.path)}: ok ({len(profile.services)} services)")


@main.command()
@click.argument("profile_name", metavar="[PROFILE]", required=False)
@click.option("--headless", is_flag=True, help="Run the engine in the foreground, no TUI.")
@click.option("--detach", is_flag=True, help="Start the engine in the background and return.")
@click.option("--reset", is_flag=True, help="Forget runtime choices (active targets).")
def up(profile_name: str | None, headless: bool, detach: bool, reset: bool) -> None:
    """Start the ambassadors for PROFILE and open the TUI."""
    if headless and detach:
        raise click.UsageError("--headless and --detach exclude each other")
    path = profile_path(profile_name)
    profile = load(path)
    workdir = Workdir.beside(path)
    status = run(running_status(workdir))
    if status is not None:
        if headless or detach:
            fail(
                f"an engine is already running for {path} (pid {status['engine']['pid']}); "
                f"use 'devamb attach' or 'devamb down'"
            )
        _open_tui(workdir, path, owns_engine=False)
        return
    for removed in clean_stale(workdir):
        click.echo(f"devamb: cleaned up {removed}", err=True)
    if headless:
        from devamb.runner import run_engine

        sys.exit(run_engine(profile, workdir, reset=reset))
    proc, offset = spawn_engine(path, workdir, reset=reset)
    try:
        status = run(wait_ready(proc, workdir, offset))
    except LaunchError as exc:
        fail(str(exc))
    if detach:
        _print_listeners(status)
        where = f" -p {profile_name}" if profile_name else ""
        click.echo(f"engine pid {proc.pid}; stop it with: devamb{where} down")
        return
    _open_tui(workdir, path, owns_engine=True)
    proc.wait()


def _open_tui(workdir: Workdir, path: Path, *, owns_engine: bool) -> None:
    """The TUI on the engine of this workdir; if the engine dies, it can start a new one."""
    from ui.app import run_tui

    async def restart() -> ControlClient:
        clean_stale(workdir)
        proc, offset = spawn_engine(path, workdir, reset=False)
        await wait_ready(proc, workdir, offset)  # a LaunchError is shown in the dialog
        return ControlClient(workdir.socket)

    run_tui(ControlClient(workdir.socket), owns_engine=owns_engine, restart=restart)


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
    path = profile_path(profile_name)
    workdir = Workdir.beside(path)
    if run(running_status(workdir)) is None:
        fail("no engine is running for this profile (start one with 'devamb up')", EXIT_NO_ENGINE)
    _open_tui(workdir, path, owns_engine=False)


@main.command()
@profile_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, stable for scripts.")
def status(profile_name: str | None, as_json: bool) -> None:
    """Services, listeners, active targets and counters."""
    data: Status = run(call(profile_name, "status"))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from devamb.cli_output import print_status

    print_status(data)


@main.command()
@profile_option
@click.argument("service")
@click.argument("target")
def switch(profile_name: str | None, service: str, target: str) -> None:
    """Re-point SERVICE at TARGET; exchanges in flight finish where they started."""
    run(call(profile_name, "switch", service, target))
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
    from devamb.cli_output import print_exchange

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
                        if event["type"] == "exchange":
                            print_exchange(event["exchange"], as_json)  # type: ignore[typeddict-item]
        except ControlError as exc:
            fail(exc.message, exc.code)

    with contextlib.suppress(KeyboardInterrupt):
        run(go())


@main.command()
@profile_option
def down(profile_name: str | None) -> None:
    """Stop the running engine."""
    workdir = Workdir.beside(profile_path(profile_name))

    async def go() -> int:
        async with ControlClient(workdir.socket) as client:
            pid = (await client.status())["engine"]["pid"]
            await client.shutdown()
        return pid

    try:
        pid = run(go())
    except EngineUnavailable:
        clean_stale(workdir)
        fail("no engine is running for this profile", EXIT_NO_ENGINE)
        return
    if not run(wait_stopped(pid)):
        fail(f"engine {pid} did not stop within 10s")
    click.echo(f"stopped engine {pid}")


for command in (fault, scenario, show, export, replay, record, mock):
    main.add_command(command)
