"""`devamb show`, `devamb export har|curl|grpcurl` and `devamb replay`: a closer look at
exchanges."""

from __future__ import annotations

import json
from pathlib import Path

import click

from devamb.cli.common import call, profile_option, run
from devamb.cli.export_cmd import export_envoy_cmd, export_k8s_cmd


@click.command()
@profile_option
@click.argument("exchange_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The full record as JSON.")
def show(profile_name: str | None, exchange_id: int, as_json: bool) -> None:
    """One exchange in full: headers, timings, bodies (secrets masked)."""
    detail = run(call(profile_name, "exchange", exchange_id))
    if as_json:
        click.echo(json.dumps(detail, indent=2))
    else:
        from devamb.cli.output import print_detail  # rich: only to print

        print_detail(detail)


@click.group(invoke_without_command=True)
@profile_option
@click.option("--check", is_flag=True,
              help="Print the profile's Envoy mapping report; exit 0 when everything maps.")
@click.pass_context
def export(ctx: click.Context, profile_name: str | None, check: bool) -> None:
    """Export exchanges (har FILE, curl ID, grpcurl ID) or the profile as an Envoy
    ambassador (envoy, k8s, --check)."""
    if check:
        from devamb.cli.export_cmd import check_report

        check_report(profile_name)
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@export.command("har")
@profile_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--filter", "filter_text", metavar="EXPR", help="Only the exchanges that match.")
def export_har(profile_name: str | None, file: Path, filter_text: str | None) -> None:
    """Write recorded HTTP exchanges as HAR 1.2 (opens in browser dev tools)."""
    har = run(call(profile_name, "export_har", filter_text))
    file.write_text(json.dumps(har, indent=2))
    click.echo(f"wrote {len(har['log']['entries'])} exchanges to {file}")


@export.command("curl")
@profile_option
@click.argument("exchange_id", type=int)
def export_curl(profile_name: str | None, exchange_id: int) -> None:
    """Print one exchange as a curl command (through its listener)."""
    click.echo(run(call(profile_name, "export_curl", exchange_id)))


@export.command("grpcurl")
@profile_option
@click.argument("exchange_id", type=int)
def export_grpcurl(profile_name: str | None, exchange_id: int) -> None:
    """Print one gRPC unary call as a grpcurl command (through its listener)."""
    click.echo(run(call(profile_name, "export_grpcurl", exchange_id)))


@click.command()
@profile_option
@click.argument("exchange_id", type=int)
@click.option("--target", "-t", help="Another target of the same service (default: its own).")
@click.option("--diff", is_flag=True, help="Compare the replay's response with the original's.")
@click.option("--ignore", multiple=True, metavar="FIELD",
              help="JSON fields (or body.paths) the diff ignores; repeatable.")
def replay(profile_name: str | None, exchange_id: int, target: str | None, diff: bool,
           ignore: tuple[str, ...]) -> None:
    """Send a recorded request again, recorded as a new exchange marked as a replay."""
    result = run(call(profile_name, "replay", exchange_id, target, diff, list(ignore)))
    new = result["exchange"]
    click.echo(f"replayed {exchange_id} as {new['id']} on {new['target']}: "
               f"{new.get('status') or new.get('error')}")
    if diff:
        from devamb.cli.output import print_diff  # rich: only to print

        print_diff(result["diff"])


for command in (export_envoy_cmd, export_k8s_cmd):  # the profile as an Envoy ambassador
    export.add_command(command)
