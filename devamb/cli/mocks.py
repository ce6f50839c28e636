"""`devamb record …` and `devamb mock import-har …`: mocks made from real traffic."""

from __future__ import annotations

from pathlib import Path

import click

from devamb.cli.common import call, fail, profile_option, run


@click.command(context_settings={"ignore_unknown_options": False})
@profile_option
@click.argument("words", nargs=-1, required=True, metavar="SERVICE | stop [SERVICE]")
@click.option("--to", metavar="FILE", help="Mock file to write (default mocks/SERVICE.yaml).")
@click.option("--filter", "filter_text", metavar="EXPR", help="Only exchanges that match.")
def record(profile_name: str | None, words: tuple[str, ...], to: str | None,
           filter_text: str | None) -> None:
    """Record a service's exchanges as mock routes; `devamb record stop` writes the file."""
    if words[0] == "stop":
        if len(words) > 2:
            fail("usage: devamb record stop [SERVICE]", 2)
        for item in run(call(profile_name, "stop_recording", words[1] if len(words) > 1 else None)):
            click.echo(f"{item['service']}: {item['recorded']} exchanges -> {item['file']}")
            if item.get("dropped"):
                click.echo(f"  the recording reached its limit of {item['limit']} exchanges: "
                           f"{item['dropped']} later ones were not recorded")
        return
    if len(words) != 1:
        fail("usage: devamb record SERVICE [--to FILE] [--filter EXPR]", 2)
    started = run(call(profile_name, "start_recording", words[0], to, filter_text))
    limit = started.get("limit")
    kept = f" (the first {limit} exchanges)" if limit else ""
    click.echo(f"recording {words[0]} into {started['to']}{kept}; stop with: devamb record stop")


@click.group()
def mock() -> None:
    """Mock files: import-har."""


@mock.command("import-har")
@click.argument("har_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The mock file to write.")
def import_har(har_file: Path, to: Path) -> None:
    """Turn a HAR file (browser dev tools, devamb export har) into a mock file."""
    from devamb.inspect.redaction import Redaction
    from devamb.targets.mock.har import HarError, load_har, routes_from_har
    from devamb.targets.mock.writer import write_mock_file

    try:
        routes = routes_from_har(load_har(har_file), Redaction())
    except HarError as exc:
        fail(f"{har_file}: {exc}")
        return
    write_mock_file(routes, to, f"Imported by devamb from {har_file.name}.")
    click.echo(f"wrote {len(routes)} routes to {to}")
