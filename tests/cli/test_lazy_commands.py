"""The command families are imported when run (devamb/cli/lazy.py): `devamb --help` lists them
from a table, which must say what the real commands say (issue 22: start time and RSS)."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import devamb.cli
from devamb.cli.lazy import COMMANDS, LazyGroup
from devamb.cli.main import TOXIPROXY_DEFAULT, main
from devamb.toxiproxy.address import DEFAULT


def own_commands() -> dict[str, click.Command]:
    """The commands main.py defines itself (the lazy ones may be loaded by other tests)."""
    return {name: c for name, c in main.commands.items() if name not in COMMANDS}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_says_what_the_command_says(name: str) -> None:
    entry = COMMANDS[name]
    real = entry.load()
    assert real.name == name and not real.hidden
    stand_in = click.Command(name, help=entry.help)
    for limit in range(20, 200, 3):  # every width the help may be printed at
        assert stand_in.get_short_help_str(limit) == real.get_short_help_str(limit), limit


def test_the_table_names_every_command_family() -> None:
    """Every top-level command defined in devamb/cli/ outside main.py is in the table (a new
    family must be added there, or `devamb` would not know it)."""
    found: dict[str, tuple[str, str]] = {}
    subcommands: set[int] = set()
    for info in pkgutil.iter_modules(devamb.cli.__path__):
        module_name = f"devamb.cli.{info.name}"
        if info.name in ("main", "reference", "web_ui"):  # the root group; an optional extra
            continue
        module = importlib.import_module(module_name)
        for attr, value in vars(module).items():
            if isinstance(value, click.Command) and value.callback is not None and \
                    value.callback.__module__ == module_name:
                found[value.name or attr] = (module_name, attr)
            if isinstance(value, click.Group):
                subcommands.update(id(c) for c in value.commands.values())
    top = {name: where for name, where in found.items()
           if id(getattr(importlib.import_module(where[0]), where[1])) not in subcommands}
    assert top == {name: (e.module, e.attr) for name, e in COMMANDS.items()}


def test_help_lists_every_command_as_if_all_were_loaded() -> None:
    lazy = LazyGroup(name="devamb", commands=own_commands(), params=main.params, help=main.help,
                     context_settings=main.context_settings)
    full = click.Group(name="devamb", params=main.params, help=main.help,
                       context_settings=main.context_settings,
                       commands={**own_commands(), **{n: e.load() for n, e in COMMANDS.items()}})
    for width in (60, 80, 120):
        shown = CliRunner().invoke(lazy, ["--help"], terminal_width=width)
        expected = CliRunner().invoke(full, ["--help"], terminal_width=width)
        assert shown.exit_code == 0 and shown.output == expected.output
    assert set(lazy.lazy) - set(lazy.commands) == set(COMMANDS)  # listing imported none


def test_a_lazy_command_runs() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["type"] == "object"


def test_the_toxiproxy_default_is_the_api_modules() -> None:
    assert TOXIPROXY_DEFAULT == DEFAULT


OTHER_COMMANDS = sorted({e.module for e in COMMANDS.values()} | {"devamb.export"})


def loaded_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, env=os.environ.copy(), check=True, timeout=120)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_help_imports_no_command_family_nor_asyncio() -> None:
    """`devamb --help`: click and main.py, not the families, the control client or YAML."""
    code = ("import contextlib\nfrom devamb.cli.main import main\n"
            "with contextlib.suppress(SystemExit):\n    main(['--help'])")
    modules = loaded_after(code)
    assert "devamb.cli.main" in modules
    unwanted = (*OTHER_COMMANDS, "asyncio", "yaml", "devamb.control.client", "devamb.cli.launcher")
    assert sorted(m for m in unwanted if m in modules) == []


def test_a_command_imports_its_own_family_only() -> None:
    code = ("import contextlib\nfrom devamb.cli.main import main\n"
            "with contextlib.suppress(SystemExit):\n    main(['fault', '--help'])")
    modules = loaded_after(code)
    assert "devamb.cli.faults" in modules
    assert sorted(m for m in OTHER_COMMANDS if m in modules) == ["devamb.cli.faults"]
