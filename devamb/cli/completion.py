"""`devamb completion bash|zsh|fish`: the shell completion script, from click's own support."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL, e.g. `eval "$(devamb completion bash)"`."""
    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one of click's
    click.echo(cls(root, {}, "devamb", "_DEVAMB_COMPLETE").source())
