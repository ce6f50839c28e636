"""`devamb export envoy|k8s` and `devamb export --check`: the profile as an Envoy ambassador
(a static bootstrap, and the Kubernetes objects that run it beside the app). Reads the profile
from disk; no engine is involved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from devamb.cli.common import EXIT_BAD_INPUT, fail, profile_path
from devamb.cli.common import profile_option as _profile_option
from devamb.export.defaults import ENVOY_IMAGE, KUBERNETES_VERSION

if TYPE_CHECKING:  # the exporter is imported by the commands that run it: `--help` stays quick
    from devamb.export.bootstrap import EnvoyExport, Options
    from devamb.export.load import Loaded


def _load(profile_name: str | None) -> Loaded:
    from devamb.export.load import load_for_export
    from devamb.profile import ProfileError

    if profile_name is None:  # `devamb export -p PROFILE envoy`: the group's option
        ctx = click.get_current_context(silent=True)
        parent = ctx.parent if ctx is not None else None
        profile_name = parent.params.get("profile_name") if parent is not None else None
    path = profile_path(profile_name)
    try:
        return load_for_export(path)
    except ProfileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_BAD_INPUT)


def _export(loaded: Loaded, options: Options) -> EnvoyExport:
    from devamb.export.bootstrap import export_envoy
    from devamb.export.load import ExportError

    try:
        return export_envoy(loaded, options)
    except ExportError as exc:
        fail(str(exc))
        raise  # fail exits


def _print_report(export: EnvoyExport) -> None:
    if export.report.notes:
        click.echo(export.report.text(), err=True, nl=False)
    if export.env_vars:
        click.echo(f"Envoy reads {', '.join(export.env_vars)} from its environment "
                   "(%ENVIRONMENT(VAR)%): set them where Envoy runs", err=True)


def _check_envoy(export: EnvoyExport) -> bool:
    from devamb.export.validate import validate_envoy

    ok, message = validate_envoy(export.text, export.env_vars)
    click.echo(f"envoy --mode validate: {message}" if ok else f"devamb: {message}", err=True)
    return ok


def check_report(profile_name: str | None) -> None:
    """`devamb export --check`: the mapping report alone; exit 0 when everything maps."""
    from devamb.export.bootstrap import Options

    export = _export(_load(profile_name), Options())
    click.echo(export.report.text(), nl=False)
    sys.exit(1 if export.report.notes else 0)


target_set_option = click.option(
    "--target-set", metavar="NAME",
    help="Export the target NAME of every service that has one (else export.targets, else "
         "the active target).")
admin_port_option = click.option(
    "--admin-port", type=click.IntRange(1, 65535), default=9901, show_default=True,
    help="Envoy's admin port (bound to 127.0.0.1).")
validate_option = click.option(
    "--validate", is_flag=True, help="Check the output with the real Envoy "
    "(envoy --mode validate) and, for k8s, kubernetes-validate --strict.")


@click.command("envoy")
@_profile_option
@target_set_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the bootstrap here (default: stdout).")
@admin_port_option
@validate_option
def export_envoy_cmd(profile_name: str | None, target_set: str | None, output: Path | None,
                     admin_port: int, validate: bool) -> None:
    """The profile as an Envoy v3 static bootstrap (the mapping report goes to stderr)."""
    from devamb.export.bootstrap import Options

    export = _export(_load(profile_name), Options(target_set, admin_port))
    if output is None:
        click.echo(export.text, nl=False)
    else:
        output.write_text(export.text, encoding="utf-8")
        click.echo(f"wrote the Envoy bootstrap to {output}", err=True)
    _print_report(export)
    if validate and not _check_envoy(export):
        sys.exit(EXIT_BAD_INPUT)


@click.command("k8s")
@_profile_option
@target_set_option
@click.option("--app-deployment", type=click.Path(dir_okay=False, path_type=Path),
              help="The app's Deployment (YAML): written back with the ambassador added.")
@click.option("--namespace", metavar="NS", help="Namespace of every object.")
@click.option("--image", default=ENVOY_IMAGE, show_default=True, help="The Envoy image.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Write configmap.yaml and deployment.yaml into this folder (default: "
                   "stdout).")
@admin_port_option
@validate_option
@click.option("--kubernetes-version", default=KUBERNETES_VERSION, show_default=True,
              help="The Kubernetes version --validate checks against.")
def export_k8s_cmd(profile_name: str | None, target_set: str | None,
                   app_deployment: Path | None, namespace: str | None, image: str,
                   output: Path | None, admin_port: int, validate: bool,
                   kubernetes_version: str) -> None:
    """A ConfigMap with the bootstrap and a Deployment running Envoy as the ambassador."""
    from devamb.export.bootstrap import Options
    from devamb.export.k8s import K8sOptions, k8s_objects, k8s_text
    from devamb.export.load import ExportError, check_output
    from devamb.export.validate import validate_k8s

    loaded = _load(profile_name)
    options = Options(target_set, admin_port)
    export = _export(loaded, options)
    try:
        objects = k8s_objects(export, loaded.profile.name, options,
                              K8sOptions(namespace, image, app_deployment))
        texts = [k8s_text([obj], export, loaded.profile.name) for obj in objects]
        for text in texts:
            check_output(text, loaded, "the Kubernetes objects")
    except ExportError as exc:
        fail(str(exc))
    if output is None:
        click.echo(k8s_text(objects, export, loaded.profile.name), nl=False)
    else:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in zip(("configmap.yaml", "deployment.yaml"), texts, strict=True):
            (output / name).write_text(text, encoding="utf-8")
        click.echo(f"wrote configmap.yaml and deployment.yaml to {output}", err=True)
    _print_report(export)
    if validate:
        envoy_ok = _check_envoy(export)
        k8s_ok, lines = validate_k8s(objects, kubernetes_version)
        for line in lines:
            click.echo(f"kubernetes-validate: {line}", err=True)
        if not (envoy_ok and k8s_ok):
            sys.exit(EXIT_BAD_INPUT)
