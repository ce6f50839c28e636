"""`devamb fault …` and `devamb scenario …`: faults managed live through the control API."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from devamb.cli.common import call, fail, profile_option, run

KIND_OPTIONS_HELP = (
    "Kind options mirror the profile's keys: --delay 300ms --jitter 50ms --on response "
    "(latency); --status 503 --body TEXT (abort); --after-bytes 1KiB (reset); --timeout 5s "
    "(timeout); --rate 256KiB (bandwidth); --size 64 --delay 10ms (slicer); --bytes 1KiB "
    "(limit_data); --delay 2s (slow_close); --mode bad-chunk (malformed). On http2 and grpc "
    "services: --grpc-status UNAVAILABLE --grpc-message TEXT (abort); --code CANCEL --scope "
    "connection (reset); --per-message true (latency); --path /pkg.Service/Method matches a "
    "gRPC method."
)


@click.group()
def fault() -> None:
    """Manage faults live: list, add, on, off, rm, clear."""


@fault.command("list")
@profile_option
@click.argument("service", required=False)
@click.option("--json", "as_json", is_flag=True, help="The fault lists as JSON.")
def list_faults(profile_name: str | None, service: str | None, as_json: bool) -> None:
    """Faults per service, with what fired."""
    faults = run(call(profile_name, "faults", service))
    if as_json:
        click.echo(json.dumps(faults, indent=2))
    else:
        from devamb.cli.output import print_faults  # rich: only to print

        print_faults(faults)


@fault.command(
    "add",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=KIND_OPTIONS_HELP,
)
@profile_option
@click.argument("service")
@click.argument("kind")
@click.option("--name", help="Name of the fault (default: the kind, numbered if taken).")
@click.option("--probability", type=float, help="0..1, rolled per request (per connection, TCP).")
@click.option("--direction", help="downstream | upstream | both (kinds that shape bytes).")
@click.option("--method", multiple=True, help="Only these HTTP methods (repeatable).")
@click.option("--path", help="Only paths matching this glob, e.g. '/charge*'.")
@click.option("--header", multiple=True, help="Only requests with 'Name: glob' (repeatable).")
@click.option("--sql", help="postgres: only statements containing this text (or glob).")
@click.option("--command", "redis_command", help="redis: only this command (a glob), e.g. GET.")
@click.option("--key", help="redis: only commands whose first key matches this glob.")
@click.option("--times", type=int, help="Fire this many times, then turn off.")
@click.option("--after", type=int, help="Let this many matching exchanges through first.")
@click.option("--for", "duration", help="Turn off after this long, e.g. 30s.")
@click.option("--disabled", is_flag=True, help="Add it turned off.")
@click.pass_context
def add_fault(ctx: click.Context, profile_name: str | None, service: str, kind: str,
              **options: Any) -> None:
    """Add a fault of KIND to SERVICE (replaces one with the same name)."""
    spec: dict[str, Any] = {"kind": kind, **_kind_options(ctx.args)}
    for key in ("name", "probability", "direction", "times", "after"):
        if options[key] is not None:
            spec[key] = options[key]
    if options["duration"]:
        spec["for"] = options["duration"]
    if options["disabled"]:
        spec["enabled"] = False
    match: dict[str, Any] = {}
    if options["method"]:
        match["method"] = list(options["method"])
    if options["path"]:
        match["path"] = options["path"]
    if options["header"]:
        match["header"] = dict(_header(h) for h in options["header"])
    if options["sql"]:
        match["sql"] = options["sql"]
    if options["redis_command"]:
        match["command"] = options["redis_command"]
    if options["key"]:
        match["key"] = options["key"]
    if match:
        spec["match"] = match
    added = run(call(profile_name, "add_fault", service, spec))
    click.echo(f"{service}: fault {added['name']} ({added['kind']}) added"
               + ("" if added["enabled"] else ", off"))


def _kind_options(args: list[str]) -> dict[str, Any]:
    """`--after-bytes 1KiB --status 503` -> {"after_bytes": "1KiB", "status": 503}."""
    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        if flag.startswith("--") and "=" in flag:  # --reply='-READONLY …': a value that starts
            flag, value = flag.split("=", 1)  # with '-' is given this way
            key = flag[2:].replace("-", "_")
            options[key] = value if key == "reply" else yaml.safe_load(value)  # (as written)
            i += 1
            continue
        if not flag.startswith("--") or i + 1 >= len(args):
            fail(f"expected '--OPTION VALUE' pairs for the kind's settings, got {flag!r}", 2)
        key = flag[2:].replace("-", "_")
        value = args[i + 1]  # 503 -> int, 0.5 -> float, 300ms -> str; a Redis reply as written
        options[key] = value if key == "reply" else yaml.safe_load(value)
        i += 2
    return options


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        fail(f"--header expects 'Name: glob', got {text!r}", 2)
    return name.strip(), value.strip()


def _toggle(enabled: bool, summary: str) -> click.Command:
    word = "on" if enabled else "off"

    @profile_option
    @click.argument("service")
    @click.argument("name")
    def toggle(profile_name: str | None, service: str, name: str) -> None:
        run(call(profile_name, "set_fault", service, name, enabled))
        click.echo(f"{service}: fault {name} {word}")

    return click.command(word, help=summary)(toggle)


fault.add_command(_toggle(True, "Turn a fault on."))
fault.add_command(_toggle(False, "Turn a fault off (it stays defined)."))


@fault.command("rm")
@profile_option
@click.argument("service")
@click.argument("name")
def fault_rm(profile_name: str | None, service: str, name: str) -> None:
    """Remove a fault."""
    run(call(profile_name, "remove_fault", service, name))
    click.echo(f"{service}: fault {name} removed")


@fault.command("clear")
@profile_option
@click.argument("service", required=False)
def fault_clear(profile_name: str | None, service: str | None) -> None:
    """Remove every fault of SERVICE (or of all services)."""
    run(call(profile_name, "clear_faults", service))
    click.echo(f"faults cleared: {service or 'all services'}")


@click.group()
def scenario() -> None:
    """Run the profile's fault scenarios: list, start, stop."""


@scenario.command("list")
@profile_option
def scenario_list(profile_name: str | None) -> None:
    for item in run(call(profile_name, "scenarios")):
        state = (f"running, step {item['step'] + 1}/{item['steps']}" if item["running"]
                 else "stopped")
        click.echo(f"{item['name']:<20} {state}{' (loops)' if item['loop'] else ''}")


@scenario.command("start")
@profile_option
@click.argument("name")
def scenario_start(profile_name: str | None, name: str) -> None:
    run(call(profile_name, "start_scenario", name))
    click.echo(f"scenario {name} started")


@scenario.command("stop")
@profile_option
@click.argument("name")
def scenario_stop(profile_name: str | None, name: str) -> None:
    run(call(profile_name, "stop_scenario", name))
    click.echo(f"scenario {name} stopped")
