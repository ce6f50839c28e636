"""`devamb ui --web`: the real command serving the TUI of a real engine, opened in headless
Chromium; requests without the token, from another Host or another site's page get 403."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devamb.cli.common import EXIT_NO_ENGINE
from tests.conftest import devamb
from tests.ui.chromium import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PROFILE = """\
version: 1
name: webdemo
services:
  checkout:
    listen: 0
    target: echo
    targets:
      echo: echo
"""


@contextlib.asynccontextmanager
async def web_ui(project: Path) -> AsyncIterator[str]:
    """`devamb up --detach`, then `devamb ui --web`: yields the URL it prints; stops both."""
    (project / "devamb.yaml").write_text(PROFILE)
    code, _, err = await devamb("up", "--detach", cwd=project)
    assert code == 0, err
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devamb", "ui", "--web", cwd=project,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        assert found, line
        yield found.group(1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        code, _, err = await devamb("down", cwd=project)
        assert code == 0, err


def attached_sessions(project: Path) -> list[int]:
    """The `devamb attach` processes of this project (one per browser session)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"attach" in cmdline and str(project / "devamb.yaml").encode() in cmdline:
                found.append(int(pid))
    return found


async def status_of(url: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def test_the_token_host_and_origin_guard(tmp_path: Path) -> None:
    async with web_ui(tmp_path) as url:
        base = url.split("/?")[0]
        assert await status_of(base + "/") == 403
        assert await status_of(base + "/?token=wrong") == 403
        assert await status_of(base + "/static/js/textual.js") == 403
        assert await status_of(base + "/ws") == 403
        assert await status_of(url, Host="devamb.attacker.example") == 403  # DNS rebinding
        assert await status_of(url, Origin="http://attacker.example") == 403
        jar = aiohttp.CookieJar(unsafe=True)  # aiohttp keeps no cookies of IP hosts by default
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(url) as response:
                assert response.status == 200
                assert "devamb_ui_token" in response.cookies
            # the cookie the page set is what the static files and the websocket carry
            async with session.get(base + "/static/js/textual.js") as response:
                assert response.status == 200


async def test_the_tui_opens_in_headless_chromium(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    async with web_ui(project) as url:
        async with chromium(tmp_path / "chromium") as page:
            await page.open(url.split("?")[0] + "?token=wrong")
            refusal = await page.wait_for("document.body && document.body.innerText", "a page")
            assert "open the URL devamb printed" in refusal
            await page.open(url)
            await page.wait_for("window.__received.includes('checkout')", "the service's row")
            await page.wait_for("window.__received.includes('webdemo')", "the profile's name")
            assert len(attached_sessions(project)) == 1
            shot = tmp_path / "web-tui.png"
            await page.screenshot(shot)
            assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
        # the tab closed: its TUI (an attached `devamb attach`) ends, the engine stays
        for _ in range(300):
            if not attached_sessions(project):
                break
            await asyncio.sleep(0.1)
        assert attached_sessions(project) == []
        code, _, err = await devamb("status", "--json", cwd=project)
        assert code == 0, err


async def test_without_an_engine_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text(PROFILE)
    code, _, err = await devamb("ui", "--web", cwd=tmp_path)
    assert code == EXIT_NO_ENGINE, err
    assert "devamb up" in err
