"""The command line with every command family imported: what the generated reference
(docs/reference/cli.md, mkdocs-click, which reads a group's `commands`) documents."""

from __future__ import annotations

import click

from devamb.cli.main import main


def loaded(group: click.Group) -> click.Group:
    """`group` after importing each of its lazy commands (a lazy group imports one when asked)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        group.get_command(ctx, name)
    return group


cli = loaded(main)
