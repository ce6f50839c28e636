"""A click group whose command families are imported when run, not when the CLI starts.

`devamb up` (the engine's process) and `devamb status` import only their own code; `devamb
--help` lists every command from the table below without importing them (issue 22: RSS and
start time). tests/cli/test_lazy_commands.py checks the table against the real commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    module: str
    attr: str
    help: str  # the first paragraph of the command's help: what `devamb --help` shows

    def load(self) -> click.Command:
        command = getattr(importlib.import_module(self.module), self.attr)
        assert isinstance(command, click.Command), f"{self.module}.{self.attr}"
        return command


COMMANDS: Mapping[str, LazyCommand] = {
    "completion": LazyCommand(
        "devamb.cli.completion", "completion",
        'Print the completion script for SHELL, e.g. `eval "$(devamb completion bash)"`.'),
    "doctor": LazyCommand(
        "devamb.cli.doctor", "doctor",
        "Check this machine and the profile: Python, uvloop, Docker, ports, socket, bastions."),
    "export": LazyCommand(
        "devamb.cli.inspect", "export",
        "Export exchanges (har FILE, curl ID, grpcurl ID) or the profile as an Envoy\n"
        "ambassador (envoy, k8s, --check)."),
    "fault": LazyCommand(
        "devamb.cli.faults", "fault", "Manage faults live: list, add, on, off, rm, clear."),
    "mock": LazyCommand("devamb.cli.mocks", "mock", "Mock files: import-har."),
    "record": LazyCommand(
        "devamb.cli.mocks", "record",
        "Record a service's exchanges as mock routes; `devamb record stop` writes the file."),
    "replay": LazyCommand(
        "devamb.cli.inspect", "replay",
        "Send a recorded request again, recorded as a new exchange marked as a replay."),
    "scenario": LazyCommand(
        "devamb.cli.faults", "scenario", "Run the profile's fault scenarios: list, start, stop."),
    "schema": LazyCommand(
        "devamb.cli.schema_cmd", "schema",
        "Print the JSON Schema of devamb.yaml (editors complete and check profiles with it)."),
    "show": LazyCommand(
        "devamb.cli.inspect", "show",
        "One exchange in full: headers, timings, bodies (secrets masked)."),
    "top": LazyCommand(
        "devamb.cli.top", "top",
        "SERVICE's slowest statements among its recorded exchanges: SQL and Redis commands with\n"
        "their literals made `?` (HTTP: method and path), with count, errors, p50, p99 and max."),
}


class LazyGroup(click.Group):
    """A group with `lazy` commands imported on first use; its help lists them unimported."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] = COMMANDS,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = self.commands.get(cmd_name)
        entry = self.lazy.get(cmd_name)
        if found is not None or entry is None:
            return found
        if self._listing:  # the help's table of commands: the name and its help suffice
            return click.Command(cmd_name, help=entry.help)
        command = entry.load()
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False
