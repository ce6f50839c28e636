"""`devamb top SERVICE`: the service's slowest statements, normalised, with counts and p50/p99."""

from __future__ import annotations

import json
from typing import Any

import click

from devamb.cli.common import call, profile_option, run

STATEMENT_WIDTH = 70


def _ms(value: float) -> str:
    return f"{value:.1f}ms" if value < 1000 else f"{value / 1000:.2f}s"


def format_top(view: dict[str, Any], width: int = STATEMENT_WIDTH) -> list[str]:
    """The view as table lines: statement, count, errors, p50, p99, max."""
    rows = view.get("slowest") or []
    if not rows:
        return [f"{view['service']}: no statements recorded yet"]
    lines = [f"{view['service']}: {view['statements']} statements, {view['forms']} forms, "
             f"the {len(rows)} slowest by p99"]
    header = ("STATEMENT", "COUNT", "ERR", "P50", "P99", "MAX")
    table = [header] + [
        (_cut(r["statement"], width), str(r["count"]), str(r["errors"]), _ms(r["p50_ms"]),
         _ms(r["p99_ms"]), _ms(r["max_ms"])) for r in rows
    ]
    sizes = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(sizes[0])] + [c.rjust(s) for c, s in zip(row[1:], sizes[1:],
                                                                        strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@profile_option
@click.argument("service")
@click.option("--limit", "-n", default=10, show_default=True, help="How many statements.")
@click.option("--json", "as_json", is_flag=True, help="The view as one JSON object.")
def top(profile_name: str | None, service: str, limit: int, as_json: bool) -> None:
    """SERVICE's slowest statements among its recorded exchanges: SQL and Redis commands with
    their literals made `?` (HTTP: method and path), with count, errors, p50, p99 and max."""
    view = run(call(profile_name, "slow_statements", service, limit))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    for line in format_top(view):
        click.echo(line)
