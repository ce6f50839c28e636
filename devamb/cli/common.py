"""Helpers every CLI command shares: running coroutines, failing cleanly, reaching the engine."""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from devamb.control.protocol import ControlError, EngineUnavailable
from devamb.control.workdir import UnsafeSocketDir, Workdir
from devamb.profile import (
    DEFAULT_PROFILE,
    ProfileError,
    display_path,
    resolve_profile_path,
)

if TYPE_CHECKING:  # the control client (asyncio) and the engine: imported by what uses them
    from devamb.control.client import ControlClient
    from devamb.engine.assembly import Profile

T = TypeVar("T")
EXIT_BAD_INPUT, EXIT_NO_ENGINE = 1, 3


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio  # not for `devamb --help`

    return asyncio.run(coro)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"devamb: {message}", err=True)
    sys.exit(code)


def profile_choice(name: str | None) -> str | None:
    """PROFILE from the command, else `devamb -p PROFILE …`, else $DEVAMB_PROFILE."""
    ctx = click.get_current_context(silent=True)
    group_choice = ctx.find_root().params.get("profile_name") if ctx else None
    return name or group_choice or os.environ.get("DEVAMB_PROFILE")


def profile_path(name: str | None) -> Path:
    """PROFILE from the command, else `devamb -p PROFILE …`, else $DEVAMB_PROFILE, else default."""
    return resolve_profile_path(profile_choice(name))


def command_for(name: str | None, command: str) -> str:
    """How the user runs `command` on the same profile, e.g. "devamb -p staging up"."""
    choice = profile_choice(name)
    return f"devamb -p {choice} {command}" if choice else f"devamb {command}"


def load(path: Path) -> Profile:
    from devamb.engine.assembly import load_profile  # the engine: commands that read a profile

    try:
        return load_profile(path)
    except ProfileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)


def client_for(name: str | None) -> ControlClient:
    from devamb.control.client import ControlClient

    workdir = Workdir.beside(profile_path(name))
    try:
        workdir.check_socket_dir()
    except UnsafeSocketDir as exc:
        fail(str(exc))
    return ControlClient(workdir.socket)


def explain_unavailable(name: str | None, exc: EngineUnavailable) -> str:
    """Why no engine answers, and what to run: said in the user's terms (the profile, the
    folder looked in), never in the HTTP client's."""
    from devamb.cli.launcher import live_pid

    path = profile_path(name)
    workdir = Workdir.beside(path)
    pid = live_pid(workdir)
    if pid is not None:
        return (
            f"engine pid {pid} is alive but not answering ({exc.message}); "
            f"'{command_for(name, 'down')}' stops it"
        )
    if not path.exists():
        return (
            f"no engine is running, and there is no profile {path} (looked in {path.parent}); "
            f"run devamb in your project folder, or give -p the profile's path"
        )
    return (
        f"no engine is running for {display_path(path)} (nothing answers on {workdir.socket}); "
        f"start one with '{command_for(name, 'up')}'"
    )


async def call(name: str | None, method: str, *args: Any) -> Any:
    try:
        async with client_for(name) as client:
            return await getattr(client, method)(*args)
    except EngineUnavailable as exc:
        fail(explain_unavailable(name, exc), exc.code)
    except ControlError as exc:
        fail(exc.message, exc.code)


profile_option = click.option(
    "-p",
    "--profile",
    "profile_name",
    metavar="PROFILE",
    help=f"Profile path or NAME (profiles/NAME.yaml); default ./{DEFAULT_PROFILE}.",
)
