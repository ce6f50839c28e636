"""Exporting profile text written to a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from devamb.export.bootstrap import EnvoyExport, Options, export_envoy
from devamb.export.context import Config
from devamb.export.load import load_for_export
from devamb.export.validate import validate_envoy


def export_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None,
                options: Options | None = None) -> EnvoyExport:
    """The export of the profile `text`, which the real Envoy has accepted
    (`envoy --mode validate`): each mapping test is also a generated profile Envoy checks."""
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(text))
    export = export_envoy(load_for_export(path, environ=environ or {}), options or Options())
    ok, message = validate_envoy(export.text, export.env_vars)
    assert ok, message
    return export


def parsed(export: EnvoyExport) -> dict[str, Any]:
    data = yaml.safe_load(export.text)
    assert isinstance(data, dict)
    return data


def cluster(export: EnvoyExport, name: str) -> Config:
    clusters = parsed(export)["static_resources"]["clusters"]
    found = [c for c in clusters if c["name"] == name]
    assert found, [c["name"] for c in clusters]
    return dict(found[0])


def listener(export: EnvoyExport, name: str) -> Config:
    listeners = parsed(export)["static_resources"]["listeners"]
    found = [item for item in listeners if item["name"] == name]
    assert found, [item["name"] for item in listeners]
    return dict(found[0])


def routes(export: EnvoyExport, service: str) -> list[Config]:
    manager = listener(export, service)["filter_chains"][0]["filters"][0]["typed_config"]
    return list(manager["route_config"]["virtual_hosts"][0]["routes"])


def http_filters(export: EnvoyExport, service: str) -> list[Config]:
    manager = listener(export, service)["filter_chains"][0]["filters"][0]["typed_config"]
    return list(manager["http_filters"])


def lines(export: EnvoyExport) -> list[str]:
    """The report's lines, the profile named by its file name (devamb.yaml:LINE:COL: …)."""
    file = export.report.source.file
    return [line.replace(file, Path(file).name, 1) for line in export.report.lines()]


def saying(export: EnvoyExport, text: str) -> list[str]:
    return [line for line in lines(export) if text in line]
