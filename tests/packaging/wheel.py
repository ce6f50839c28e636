"""The checkout built as a wheel and installed into a fresh venv, as a user would get it.

The venv sees the machine's site-packages (`--system-site-packages`) for devamb's dependencies,
which are installed already; devamb itself is installed from the wheel with `--no-deps`, so the
venv's own site-packages holds exactly what the wheel ships.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH: the venv must not see the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def build_wheel(out: Path) -> Path:
    """`pip wheel` the checkout (without build isolation when hatchling is installed: offline)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(4, "--no-build-isolation")
    subprocess.run(cmd, check=True, env=clean_env(), timeout=600)
    (wheel,) = out.glob("devamb-*.whl")
    return wheel


@dataclass
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def site_packages(self) -> Path:
        (site,) = self.path.glob("lib/python3*/site-packages")
        return site

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv's bin/ (e.g. `devamb`) in `cwd`, output captured; `env`
        is added to the environment."""
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=cwd,
                              env={**clean_env(), **(env or {})},
                              capture_output=True, text=True, timeout=timeout)


def installed_wheel(tmp: Path) -> Venv:
    """A fresh venv with the checkout's wheel installed in it."""
    wheel = build_wheel(tmp / "dist")
    env = Venv(tmp / "venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True, symlinks=True).create(env.path)
    result = env.run("python", "-m", "pip", "install", "--no-deps", "-q", str(wheel), timeout=600)
    assert result.returncode == 0, result.stderr
    return env
