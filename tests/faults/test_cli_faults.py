"""`devamb fault …` and `devamb scenario …` against a real `devamb up --detach` engine.

One engine serves the whole module (each command is a fresh Python process, so they are kept
few); every test leaves the engine's faults as the profile defines them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

PROFILE = """
version: 1
services:
  api:
    listen: 0
    targets:
      up: echo
    faults:
      gate: {kind: abort, status: 502, enabled: false}
scenarios:
  blip:
    loop: true
    length: 1m
    steps:
      - {at: 0s, service: api, add: {name: blip, kind: abort, status: 503}}
"""


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "devamb", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    cwd = tmp_path_factory.mktemp("cli-faults")
    (cwd / "devamb.yaml").write_text(textwrap.dedent(PROFILE))
    rc, _, err = cli("up", "--detach", cwd=cwd)
    assert rc == 0, err
    try:
        rc, out, err = cli("status", "--json", cwd=cwd)
        assert rc == 0, err
        [api] = json.loads(out)["services"]
        yield cwd, f"http://{api['listen']}"
    finally:
        cli("down", cwd=cwd)


async def _faults(cwd: Path) -> dict[str, dict]:
    from devamb.control.client import ControlClient

    client = ControlClient(cwd / ".devamb" / "engine.sock")
    try:
        return {f["name"]: f for f in (await client.faults("api"))["api"]}
    finally:
        await client.close()


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(url) as r:
        return r.status


async def test_add_off_on_list_rm_clear(project: tuple[Path, str]) -> None:
    cwd, base = project
    url = base + "/charge"
    rc, out, err = cli("fault", "add", "api", "abort", "--status", "418", "--body", "teapot",
                       "--name", "tea", "--method", "GET", "--path", "/charge*", "--times", "5",
                       cwd=cwd)
    assert rc == 0, err
    assert out.strip() == "api: fault tea (abort) added"
    tea = (await _faults(cwd))["tea"]
    assert tea["params"] == {"status": 418, "body": "teapot", "headers": {}}
    assert tea["match"] == "GET /charge*" and tea["times"] == 5
    assert await _status(url) == 418
    assert await _status(base + "/other") == 200
    rc, out, _ = cli("fault", "off", "api", "tea", cwd=cwd)
    assert rc == 0 and out.strip() == "api: fault tea off"
    assert await _status(url) == 200
    rc, out, _ = cli("fault", "on", "api", "gate", cwd=cwd)
    assert rc == 0 and out.strip() == "api: fault gate on"
    assert await _status(url) == 502
    rc, out, _ = cli("fault", "list", cwd=cwd)
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert rows["gate"][:4] == ["api", "gate", "abort", "on"]
    assert rows["tea"][:4] == ["api", "tea", "abort", "off"] and "status=418" in rows["tea"]
    assert rows["tea"][-1] == "1"  # fired once
    rc, out, _ = cli("fault", "rm", "api", "tea", cwd=cwd)
    assert rc == 0 and out.strip() == "api: fault tea removed"
    assert set(await _faults(cwd)) == {"gate"}
    rc, out, _ = cli("traffic", "--json", cwd=cwd)
    faults = [json.loads(line).get("faults", []) for line in out.splitlines()]
    assert faults[-4:] == [["tea"], [], [], ["gate"]]
    rc, out, _ = cli("fault", "clear", "api", cwd=cwd)
    assert rc == 0 and out.strip() == "faults cleared: api"
    assert await _faults(cwd) == {}
    assert await _status(url) == 200


async def test_kind_options_and_scoping_reach_the_engine(project: tuple[Path, str]) -> None:
    cwd, _ = project
    rc, out, err = cli("fault", "add", "api", "latency", "--delay", "300ms", "--jitter", "50ms",
                       "--on", "response", "--probability", "0.5", "--after", "2", "--for",
                       "30s", "--header", "X-Tenant: acme-*", "--disabled", cwd=cwd)
    assert rc == 0, err
    assert out.strip() == "api: fault latency (latency) added, off"
    rc, out, _ = cli("fault", "list", "api", "--json", cwd=cwd)
    [fault] = [f for f in json.loads(out)["api"] if f["name"] == "latency"]
    assert fault["params"] == {"delay": 0.3, "jitter": 0.05, "distribution": "uniform",
                               "on": "response"}
    assert fault["probability"] == 0.5 and fault["after"] == 2 and fault["for"] == 30.0
    assert fault["match"] == "X-Tenant: acme-*" and fault["enabled"] is False
    rc, out, _ = cli("fault", "list", "api", cwd=cwd)
    assert "delay=300ms jitter=50ms" in out  # as typed, not as stored (0.3)
    await _remove(cwd, "latency")


async def _remove(cwd: Path, name: str) -> None:
    from devamb.control.client import ControlClient

    client = ControlClient(cwd / ".devamb" / "engine.sock")
    try:
        await client.remove_fault("api", name)
    finally:
        await client.close()


async def test_bad_input_and_usage_errors(project: tuple[Path, str]) -> None:
    cwd, _ = project
    rc, _, err = cli("fault", "add", "api", "explode", cwd=cwd)
    assert rc == 1 and "'explode' is not one of latency, abort" in err
    rc, _, err = cli("fault", "add", "api", "latency", "--delay", cwd=cwd)
    assert rc == 2 and "--OPTION VALUE" in err


async def test_scenario_start_list_stop(project: tuple[Path, str]) -> None:
    cwd, base = project
    rc, out, _ = cli("scenario", "start", "blip", cwd=cwd)
    assert rc == 0 and out.strip() == "scenario blip started"
    for _ in range(50):
        if "blip" in await _faults(cwd):
            break
        await asyncio.sleep(0.05)
    assert await _status(base + "/x") == 503
    rc, out, _ = cli("scenario", "list", cwd=cwd)
    assert rc == 0 and out.split() == ["blip", "running,", "step", "2/1", "(loops)"]
    rc, out, _ = cli("scenario", "stop", "blip", cwd=cwd)
    assert rc == 0 and out.strip() == "scenario blip stopped"
    assert "blip" not in await _faults(cwd)
    assert await _status(base + "/x") == 200


def test_no_engine_is_exit_code_3(tmp_path: Path) -> None:
    rc, _, err = cli("fault", "list", cwd=tmp_path)
    assert rc == 3, err
