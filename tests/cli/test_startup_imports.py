"""`devamb --help`, `devamb status` and the other control commands start in a fraction of a
second: importing the command line must not import the engine or the heavy libraries only a
profile's targets need (issue 22). Checked on sys.modules in a fresh interpreter, not timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = (
    "devamb.engine",  # the whole engine: only `up`, `check` and the like load it, when run
    "devamb.targets",
    "devamb.proxy",
    "aiohttp",  # the control client speaks HTTP itself (control/wire.py)
    "docker",
    "requests",
    "google.protobuf",
    "grpc",
    "h2",
    "rich",  # only to print a table
    "uvloop",
)


def loaded_after(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ.copy(), check=True, timeout=120)
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_command_line_imports_nothing_heavy() -> None:
    assert heavy_in(loaded_after("import devamb.cli.main")) == []


def test_the_control_client_imports_nothing_heavy() -> None:
    assert heavy_in(loaded_after("import devamb.control.client")) == []


def test_the_check_itself_sees_heavy_modules() -> None:
    """The check can fail: the engine's assembly does pull in what it lists."""
    assert "devamb.engine" in heavy_in(loaded_after("import devamb.engine.assembly"))
