"""End to end through the real `devamb` command: engine processes, listeners, exit codes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import textwrap
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import devamb
from tests.upstreams import HttpUpstream, pattern_digest

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: a
    targets:
      a: {a}
      b: {b}
      debug: echo
"""


@pytest.fixture
async def project(tmp_path: Path, upstream: HttpUpstream, upstream2: HttpUpstream):
    (tmp_path / "devamb.yaml").write_text(
        textwrap.dedent(PROFILE.format(a=upstream.url, b=upstream2.url))
    )
    yield tmp_path
    await devamb("down", cwd=tmp_path)


async def _listen_url(cwd: Path, service: str = "api") -> str:
    rc, out, _ = await devamb("status", "--json", cwd=cwd)
    assert rc == 0
    [svc] = [s for s in json.loads(out)["services"] if s["name"] == service]
    return f"http://{svc['listen']}"


async def test_up_request_switch_status_down(project: Path) -> None:
    rc, out, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    assert "api" in out and "-> a" in out
    url = await _listen_url(project)
    async with aiohttp.ClientSession() as client:
        assert (await (await client.get(url + "/one")).json())["upstream"] == "up"
        rc, out, _ = await devamb("switch", "api", "b", cwd=project)
        assert rc == 0 and out.strip() == "api -> b"
        assert (await (await client.get(url + "/two")).json())["upstream"] == "up2"
    rc, out, _ = await devamb("status", "--json", cwd=project)
    status = json.loads(out)
    assert set(status) >= {"profile", "engine", "services", "errors"}
    [api] = status["services"]
    assert api["target"] == "b" and api["stats"]["requests"] == 2
    assert {t["name"]: t["active"] for t in api["targets"]} == {
        "a": False,
        "b": True,
        "debug": False,
    }
    rc, out, _ = await devamb("traffic", "--json", cwd=project)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["target"], x["path"], x["status"]) for x in lines] == [
        ("a", "/one", 200),
        ("b", "/two", 200),
    ]
    rc, out, _ = await devamb("status", cwd=project)
    assert rc == 0 and "api" in out
    rc, out, _ = await devamb("down", cwd=project)
    assert rc == 0 and out.startswith("stopped engine")
    assert not (project / ".devamb" / "engine.sock").exists()
    rc, _, err = await devamb("status", cwd=project)
    assert rc == 3 and "no engine is running" in err and "devamb up" in err


async def test_switch_to_unknown_target_is_bad_input(project: Path) -> None:
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    rc, _, err = await devamb("switch", "api", "nope", cwd=project)
    assert rc == 1 and "service 'api' has no target 'nope'; known: a, b, debug" in err
    rc, _, err = await devamb("switch", "web", "a", cwd=project)
    assert rc == 1 and "no service 'web'; known: api" in err


async def test_no_engine_exit_codes(tmp_path: Path) -> None:
    assert (await devamb("switch", "api", "b", cwd=tmp_path))[0] == 3
    assert (await devamb("down", cwd=tmp_path))[0] == 3
    assert (await devamb("frobnicate", cwd=tmp_path))[0] == 2


async def test_validate_reports_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text(
        "services:\n  api:\n    listen: 9001\n    target: b\n    targets: {a: echo}\n"
    )
    rc, _, err = await devamb("validate", cwd=tmp_path)
    assert rc == 1
    assert err.strip() == "devamb.yaml:4:13: services.api.target: 'b' is not one of a"


async def test_port_in_use_names_service_and_port(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        (tmp_path / "devamb.yaml").write_text(
            f"services:\n  payments:\n    listen: {port}\n    targets: {{a: echo}}\n"
        )
        rc, _, err = await devamb("up", "--detach", cwd=tmp_path)
    finally:
        blocker.close()
    assert rc == 1
    assert (
        f"service 'payments' cannot listen on 127.0.0.1:{port}: the port is already in use" in err
    )


async def test_second_up_says_already_running_and_stale_files_are_cleaned(project: Path) -> None:
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    rc, _, err = await devamb("up", "--headless", cwd=project)
    assert rc == 1 and "already running" in err
    pid = int((project / ".devamb" / "engine.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # leaves its socket and pid file behind
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    assert (project / ".devamb" / "engine.sock").exists()
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0 and "cleaned up" in err
    assert (await devamb("status", cwd=project))[0] == 0


async def test_switch_survives_restart_unless_reset(project: Path) -> None:
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    assert (await devamb("switch", "api", "debug", cwd=project))[0] == 0
    assert (await devamb("down", cwd=project))[0] == 0
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    _, out, _ = await devamb("status", "--json", cwd=project)
    assert json.loads(out)["services"][0]["target"] == "debug"
    assert (await devamb("down", cwd=project))[0] == 0
    assert (await devamb("up", "--detach", "--reset", cwd=project))[0] == 0
    _rc, out, _ = await devamb("status", "--json", cwd=project)
    assert json.loads(out)["services"][0]["target"] == "a"


async def test_init_writes_a_valid_profile_and_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/")
    rc, _, _ = await devamb("init", cwd=tmp_path)
    assert rc == 0
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.devamb/\n"
    assert (await devamb("validate", cwd=tmp_path))[0] == 0
    assert (await devamb("init", cwd=tmp_path))[0] == 1  # will not overwrite


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
async def test_256mib_download_keeps_engine_memory_bounded(project: Path) -> None:
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    pid = int((project / ".devamb" / "engine.pid").read_text())
    url = await _listen_url(project)
    async with aiohttp.ClientSession() as client:  # warm up: first request allocates pools
        await (await client.get(url + f"/bytes/{1 << 20}")).read()
    before = _rss_kib(pid, "VmRSS")
    total = 256 * 1024 * 1024
    digest = hashlib.sha256()
    async with aiohttp.ClientSession() as client:
        resp = await client.get(url + f"/bytes/{total}")
        async for chunk in resp.content.iter_chunked(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == pattern_digest(total)
    peak = _rss_kib(pid, "VmHWM")
    assert peak - before < 16 * 1024, f"engine grew {(peak - before) / 1024:.1f} MiB"


@pytest.mark.parametrize("grace", ["nan", "inf", "-1"])
async def test_a_grace_that_is_not_a_duration_is_refused(tmp_path: Path, grace: str) -> None:
    rc, _, err = await devamb("down", "--grace", grace, cwd=tmp_path)
    assert rc == 2
    assert "Invalid value for '--grace'" in err
