"""Helpers every CLI command shares: running coroutines, failing cleanly, reaching the engine."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from devamb.control.client import ControlClient
from devamb.control.protocol import ControlError
from devamb.profile import (
    DEFAULT_PROFILE,
    Profile,
    ProfileError,
    load_profile,
    resolve_profile_path,
)
from devamb.workdir import Workdir

T = TypeVar("T")
EXIT_BAD_INPUT, EXIT_NO_ENGINE = 1, 3


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"devamb: {message}", err=True)
    sys.exit(code)


def profile_path(name: str | None) -> Path:
    """PROFILE from the command, else `devamb -p PROFILE …`, else $DEVAMB_PROFILE, else default."""
    ctx = click.get_current_context(silent=True)
    group_choice = ctx.find_root().params.get("profile_name") if ctx else None
    return resolve_profile_path(name or group_choice or os.environ.get("DEVAMB_PROFILE"))


def load(path: Path) -> Profile:
    try:
        return load_profile(path)
    except ProfileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)


def client_for(name: str | None) -> ControlClient:
    return ControlClient(Workdir.beside(profile_path(name)).socket)


async def call(name: str | None, method: str, *args: Any) -> Any:
    try:
        async with client_for(name) as client:
            return await getattr(client, method)(*args)
    except ControlError as exc:
        fail(exc.message, exc.code)


profile_option = click.option(
    "-p",
    "--profile",
    "profile_name",
    metavar="PROFILE",
    help=f"Profile path or NAME (profiles/NAME.yaml); default ./{DEFAULT_PROFILE}.",
)
