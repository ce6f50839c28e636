"""The wheel as a user installs it: `devamb` runs from a fresh venv, outside the checkout,
and the wheel ships no top-level `ui` package (issue 20)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.packaging.wheel import ROOT, Venv, clean_env, installed_wheel
from tests.tmux import Terminal


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    yield installed_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_ui_as_devamb_ui(wheel_venv: Venv) -> None:
    site = wheel_venv.site_packages
    assert not (site / "ui").exists()
    assert (site / "devamb_ui" / "app.py").is_file()
    assert (site / "devamb_ui" / "app.tcss").is_file()
    code = ("import devamb, devamb_ui.app, sys; "
            "print(devamb.__file__); print(devamb_ui.app.__file__); "
            "print('ui' in sys.modules)")
    result = wheel_venv.run("python", "-c", code, cwd=site.parent)
    assert result.returncode == 0, result.stderr
    devamb_file, ui_file, ui_loaded = result.stdout.split()
    assert devamb_file.startswith(str(site)) and ui_file.startswith(str(site))
    assert ui_loaded == "False"


def test_version_and_help_from_the_installed_wheel(wheel_venv: Venv, tmp_path: Path) -> None:
    result = wheel_venv.run("devamb", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+\.\d+\.\d+", result.stdout)
    result = wheel_venv.run("devamb", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "up" in result.stdout and "validate" in result.stdout


def demo_on_free_ports(folder: Path) -> dict[str, int]:
    """The checkout's demo profile, copied to `folder` with its ports moved to free ones."""
    text = (ROOT / "profiles" / "demo.yaml").read_text()
    ports = {"web": 9000, "api": 9001, "cache": 6390}
    moved = {name: free_port() for name in ports}
    for name, port in ports.items():
        text = re.sub(rf"\b{port}\b", str(moved[name]), text)
    (folder / "devamb.yaml").write_text(text)
    return moved


def test_headless_engine_runs_the_demo_from_the_installed_wheel(
    wheel_venv: Venv, tmp_path: Path
) -> None:
    ports = demo_on_free_ports(tmp_path)
    started = wheel_venv.run("devamb", "up", "--detach", cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        status = wheel_venv.run("devamb", "status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        names = {s["name"] for s in json.loads(status.stdout)["services"]}
        assert names == {"web", "api", "cache"}
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['web']}/hello", timeout=30) as r:
            assert r.status == 200
    finally:
        wheel_venv.run("devamb", "down", cwd=tmp_path)


def ports_free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_the_demo_profile_ships_in_the_wheel(wheel_venv: Venv, tmp_path: Path) -> None:
    """Outside the checkout `demo` is the shipped profile, run from a copy in the state folder."""
    shipped = wheel_venv.site_packages / "devamb" / "_profiles" / "demo.yaml"
    assert shipped.read_text() == (ROOT / "profiles" / "demo.yaml").read_text()
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    result = wheel_venv.run("devamb", "validate", "demo", cwd=tmp_path, env=state)
    assert result.returncode == 0, result.stderr
    assert "(3 services)" in result.stdout
    assert (tmp_path / "state" / "devamb" / "profiles" / "demo.yaml").is_file()


def test_up_demo_from_the_installed_wheel(wheel_venv: Venv, tmp_path: Path) -> None:
    if not ports_free(9000, 9001, 6390):
        pytest.skip("the demo's fixed ports 9000, 9001, 6390 are in use here")
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    started = wheel_venv.run("devamb", "up", "--demo", "--detach", cwd=tmp_path, env=state)
    try:
        assert started.returncode == 0, started.stderr
        assert "devamb -p demo down" in started.stdout
        status = wheel_venv.run("devamb", "-p", "demo", "status", "--json", cwd=tmp_path,
                                env=state)
        assert status.returncode == 0, status.stderr
        assert {s["name"] for s in json.loads(status.stdout)["services"]} == {
            "web", "api", "cache"}
        assert (tmp_path / "state" / "devamb" / "profiles" / ".devamb").is_dir()
        with urllib.request.urlopen("http://127.0.0.1:9000/hello", timeout=30) as r:
            assert r.status == 200
    finally:
        wheel_venv.run("devamb", "-p", "demo", "down", cwd=tmp_path, env=state)


def test_bash_completes_commands_from_the_installed_wheel(wheel_venv: Venv, tmp_path: Path) -> None:
    script = ('source <(devamb completion bash); COMP_WORDS=(devamb sta); COMP_CWORD=1; '
              '_devamb_completion devamb; printf "%s\\n" "${COMPREPLY[@]}"')
    path = f"{wheel_venv.bin}:{os.environ.get('PATH', '')}"
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={**clean_env(), "PATH": path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["status"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_tui_opens_from_the_installed_wheel(
    wheel_venv: Venv, tmp_path: Path, terminal: Terminal
) -> None:
    """`devamb up` in a terminal opens the TUI (shipped as devamb_ui), and `q` quits it."""
    ports = demo_on_free_ports(tmp_path)
    command = f"env -u PYTHONPATH {wheel_venv.bin / 'devamb'} up devamb.yaml"
    terminal.start(command, tmp_path, {"TERM": "xterm-256color"})
    deadline = time.monotonic() + 60
    while f":{ports['web']}" not in terminal.screen() and time.monotonic() < deadline:
        assert not terminal.dead(), terminal.screen()
        time.sleep(0.2)
    screen = terminal.screen()
    assert f":{ports['web']}" in screen and "cache" in screen, screen
    terminal.keys("q")
    deadline = time.monotonic() + 60
    while not terminal.dead() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert terminal.dead(), terminal.screen()
    assert "Traceback" not in terminal.screen()
