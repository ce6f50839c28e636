"""`devamb schema`: the JSON Schema of devamb.yaml (devamb/engine/json_schema.py), for editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

SCHEMA_FILE = "devamb.schema.json"  # what `devamb init` writes beside the profile


def schema_text() -> str:
    from devamb.engine.json_schema import profile_schema  # the loader's tables: not at start-up

    return json.dumps(profile_schema(), indent=2) + "\n"


def modeline(schema: str) -> str:
    """The first line of a profile that points the YAML language server at `schema`."""
    return f"# yaml-language-server: $schema={schema}\n"


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to FILE instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of devamb.yaml (editors complete and check profiles with it)."""
    if output is None:
        click.echo(schema_text(), nl=False)
        return
    output.write_text(schema_text())
    click.echo(f"wrote {output}", err=True)
