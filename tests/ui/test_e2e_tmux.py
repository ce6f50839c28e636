"""End to end: the real `devamb up` in tmux; keys switch, and a real request proves it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port
from tests.tmux import Terminal
from tests.upstreams import HttpUpstream

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WAIT = 20.0
COLORS = {"COLORTERM": "truecolor", "TERM": "xterm-256color"}


def assert_clean_exit(terminal: Terminal) -> None:
    """Exit status 0 and nothing printed after the TUI left (no traceback, no warnings)."""
    # tmux writes "Pane is dead (status N, …)" on the last screen, though not always at once
    lines = [line for line in terminal.screen().splitlines() if line.strip()]
    assert all(line.startswith("Pane is dead (status 0,") for line in lines), lines


async def answered_by(url: str) -> str:
    """Which upstream answered: the test upstream names itself, the echo target does not."""
    async with aiohttp.ClientSession() as client, client.get(f"{url}/who") as response:
        body = await response.text()
        if response.status == 200 and '"upstream": "up"' in body:
            return "up"
        return f"other ({response.status})"


async def eventually(check, what: str, terminal: Terminal) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    screen = terminal.screen()
    pytest.fail(
        f"timed out waiting for {what}; the terminal shows:\n{screen}\n"
        f"(tmux: {terminal.last_error or 'ok'})"
    )


def write_profile(folder: Path, upstream: HttpUpstream) -> str:
    """A devamb.yaml with one service on a free port; returns the listener's URL."""
    port = free_port()
    (folder / "devamb.yaml").write_text(
        textwrap.dedent(
            f"""
            version: 1
            name: e2e
            services:
              api:
                listen: {port}
                target: real
                targets:
                  real: {upstream.url}
                  debug: echo
            """
        )
    )
    return f"http://127.0.0.1:{port}"


def devamb(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devamb", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_devamb_up_switch_with_keys_then_quit(
    tmp_path: Path, upstream: HttpUpstream, terminal: Terminal
) -> None:
    url = write_profile(tmp_path, upstream)
    port = url.rsplit(":", 1)[1]
    terminal.start(f"{sys.executable} -m devamb up devamb.yaml", tmp_path, COLORS)

    async def tui_shows_api() -> bool:
        screen = terminal.screen()
        return "api" in screen and f":{port}" in screen and "real" in screen

    await eventually(tui_shows_api, "the dashboard", terminal)
    assert await answered_by(url) == "up"

    terminal.keys("t")

    async def picker_open() -> bool:
        return "Switch api" in terminal.screen()

    await eventually(picker_open, "the target picker", terminal)
    terminal.keys("2")  # 1 real, 2 debug

    async def switched() -> bool:
        return (await answered_by(url)).startswith("other (200)")

    await eventually(switched, "traffic to go to the echo target", terminal)

    async def table_shows_debug() -> bool:
        return "debug" in terminal.screen()

    await eventually(table_shows_debug, "the table to show the new target", terminal)
    assert "Traceback" not in terminal.screen()

    terminal.keys("q")  # this TUI started the engine: quitting stops it

    async def listener_closed() -> bool:
        try:
            await answered_by(url)
        except aiohttp.ClientConnectionError:
            return True
        return False

    await eventually(listener_closed, "the engine to stop", terminal)

    async def process_exited() -> bool:
        return terminal.dead()

    await eventually(process_exited, "devamb up to exit", terminal)
    assert_clean_exit(terminal)


async def test_attach_survives_a_killed_engine_and_says_so(
    tmp_path: Path, upstream: HttpUpstream, terminal: Terminal
) -> None:
    url = write_profile(tmp_path, upstream)
    started = await asyncio.to_thread(devamb, tmp_path, "up", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        status = json.loads((await asyncio.to_thread(devamb, tmp_path, "status", "--json")).stdout)
        pid = status["engine"]["pid"]
        terminal.start(f"{sys.executable} -m devamb attach", tmp_path, COLORS)

        async def dashboard() -> bool:
            return "api" in terminal.screen() and "real" in terminal.screen()

        await eventually(dashboard, "the dashboard", terminal)
        terminal.keys("t")

        async def picker_open() -> bool:
            return "Switch api" in terminal.screen()

        await eventually(picker_open, "the target picker", terminal)
        terminal.keys("2")

        async def switched() -> bool:
            return (await answered_by(url)).startswith("other (200)")

        await eventually(switched, "traffic to go to the echo target", terminal)

        os.kill(pid, signal.SIGKILL)

        async def told() -> bool:
            return "The engine stopped" in terminal.screen()

        await eventually(told, "the engine-died screen", terminal)
        assert "Traceback" not in terminal.screen()
        terminal.keys("q")

        async def process_exited() -> bool:
            return terminal.dead()

        await eventually(process_exited, "devamb attach to exit", terminal)
        assert_clean_exit(terminal)
    finally:
        await asyncio.to_thread(devamb, tmp_path, "down")


async def test_quitting_attach_leaves_the_engine_running(
    tmp_path: Path, upstream: HttpUpstream, terminal: Terminal
) -> None:
    url = write_profile(tmp_path, upstream)
    started = await asyncio.to_thread(devamb, tmp_path, "up", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        terminal.start(f"{sys.executable} -m devamb attach", tmp_path, COLORS)

        async def dashboard() -> bool:
            return "api" in terminal.screen() and "real" in terminal.screen()

        await eventually(dashboard, "the dashboard", terminal)
        terminal.keys("q")

        async def process_exited() -> bool:
            return terminal.dead()

        await eventually(process_exited, "devamb attach to exit", terminal)
        assert_clean_exit(terminal)
        assert await answered_by(url) == "up"  # the engine still proxies
    finally:
        stopped = await asyncio.to_thread(devamb, tmp_path, "down")
        assert stopped.returncode == 0, stopped.stderr
