"""Every shipped profile exports to a bootstrap the real Envoy accepts (`envoy --mode
validate`) and to Kubernetes objects that validate strictly (kubernetes-validate ships its
schemas: this runs offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devamb.export.bootstrap import Options, export_envoy
from devamb.export.defaults import KUBERNETES_VERSION
from devamb.export.k8s import K8sOptions, k8s_objects
from devamb.export.load import load_for_export
from devamb.export.validate import validate_envoy, validate_k8s

PROFILES = sorted(Path(__file__).parents[2].joinpath("profiles").glob("*.yaml"))


def test_there_are_shipped_profiles() -> None:
    assert len(PROFILES) >= 10


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_shipped_profile_exports_validate(profile: Path, tmp_path: Path) -> None:
    loaded = load_for_export(profile, environ={})
    export = export_envoy(loaded)
    ok, message = validate_envoy(export.text, export.env_vars)
    assert ok, message
    app = tmp_path / "app.yaml"
    app.write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "shop"}}, "template": {
            "metadata": {"labels": {"app": "shop"}},
            "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}}))
    for app_deployment in (None, app):
        objects = k8s_objects(export, loaded.profile.name, Options(),
                              K8sOptions(namespace="dev", app_deployment=app_deployment))
        ok, lines = validate_k8s(objects, KUBERNETES_VERSION)
        assert ok, lines
        assert [o["metadata"]["namespace"] for o in objects] == ["dev", "dev"]


def test_envoy_refuses_a_broken_bootstrap() -> None:
    ok, message = validate_envoy("static_resources: {clusters: [{name: x, type: NOPE}]}\n")
    assert not ok and "NOPE" in message


def test_kubernetes_validate_refuses_an_unknown_field() -> None:
    ok, lines = validate_k8s([{"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "x"}, "data": {}, "extra": 1}])
    assert not ok and "extra" in lines[0]
