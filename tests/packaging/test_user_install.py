"""The README's install commands, run as a user would: `uv tool install .` and `pipx install .`
from the checkout, each into a fresh tool folder of its own (dependencies from the package index),
then `devamb --version` and the shipped demo profile from outside the checkout (issue 20).

`.ci/run` sets CI=1: there a missing `uv` or `pipx` (both in the `test` extra) fails the test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.packaging.wheel import ROOT, Venv, clean_env


def tool_env(tool: str, home: Path) -> dict[str, str]:
    folders = {
        "uv": {"UV_TOOL_DIR": "tools", "UV_TOOL_BIN_DIR": "bin"},
        "pipx": {"PIPX_HOME": "tools", "PIPX_BIN_DIR": "bin"},
    }[tool]
    return {**clean_env(), **{k: str(home / v) for k, v in folders.items()},
            "XDG_STATE_HOME": str(home / "state")}


@pytest.mark.parametrize("install", [["uv", "tool", "install"], ["pipx", "install"]],
                         ids=["uv-tool", "pipx"])
def test_the_readme_install_command_gives_a_working_devamb(
    install: list[str], tmp_path: Path
) -> None:
    tool = shutil.which(install[0])
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"{install[0]} is not installed (it is in the test extra)")
        pytest.skip(f"{install[0]} is not installed")
    env = tool_env(install[0], tmp_path)
    result = subprocess.run([tool, *install[1:], str(ROOT)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    devamb = tmp_path / "bin" / "devamb"
    version = subprocess.run([str(devamb), "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("devamb, version ")
    demo = subprocess.run([str(devamb), "validate", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert not list((tmp_path / "tools").rglob("site-packages/ui"))
    assert list((tmp_path / "tools").rglob("site-packages/devamb_ui"))


def test_the_contributors_editable_install_works(tmp_path: Path) -> None:
    """`pip install -e .` (the README's contributor set-up; .ci/run): the checkout on sys.path,
    so `ui` is the repo's folder; a rewrite of ui -> devamb_ui must not break this mode."""
    env = Venv(tmp_path / "venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True, symlinks=True).create(env.path)
    cmd = ["python", "-m", "pip", "install", "--no-deps", "-q", "-e", str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(5, "--no-build-isolation")
    result = env.run(*cmd, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (env.site_packages / "devamb").exists()  # nothing but a .pth and the metadata
    code = "import devamb, ui.app; print(devamb.__file__); print(ui.app.__file__)"
    result = env.run("python", "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(ROOT / "devamb" / "__init__.py"),
                                     str(ROOT / "ui" / "app.py")]
    result = env.run("devamb", "--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("devamb, version "), result.stderr
