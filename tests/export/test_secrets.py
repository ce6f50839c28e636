"""No value from ${VAR} reaches any exported file or message: header values and Redis auth are
exported as the variable's name, and an export that would need a value refuses to be written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from devamb.cli.main import main
from tests.test_secrets import forms

TOKEN = "tok-Export-4d5e6f7a"
REDIS = "redis-Export-8b9c0d"
HOST = "Hs-Export-1q2w3e"

PROFILE = """\
version: 1
name: secrets
services:
  api:
    listen: 9001
    target: remote
    targets:
      local: http://127.0.0.1:8001
      remote:
        url: https://api.example.invalid
        headers: {Authorization: "Bearer ${API_TOKEN}", X-Key: "${API_TOKEN:-fallback-key}"}
      pool:
        endpoints: [http://127.0.0.1:8001]
        headers: {X-Pool-Token: "${API_TOKEN}"}
  cache:
    listen: 6380
    protocol: tcp
    targets:
      sharded:
        shards: {a: tcp://127.0.0.1:7001, b: tcp://127.0.0.1:7002}
        key: redis
        auth: ${REDIS_PASSWORD}
"""


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output  # stdout and stderr, as the user sees them


def test_no_secret_in_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_PASSWORD", REDIS)
    (tmp_path / "devamb.yaml").write_text(PROFILE)
    everything = []
    for args in (["export", "envoy"], ["export", "envoy", "-o", "envoy.yaml", "--validate"],
                 ["export", "k8s"], ["export", "k8s", "-o", "k8s", "--validate"],
                 ["export", "--check"]):
        code, output = _run(*args)
        assert code in (0, 1), output
        everything.append(output)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "devamb.yaml"]
    assert {p.name for p in files} == {"envoy.yaml", "configmap.yaml", "deployment.yaml"}
    everything += [p.read_text() for p in files]
    text = "\n".join(everything)
    assert "%ENVIRONMENT(API_TOKEN)%" in text and "secretKeyRef" in text
    assert "environment_variable: REDIS_PASSWORD" in text
    for secret in (TOKEN, REDIS):
        assert [f for f in forms(secret) if f in text] == [], f"{secret} leaked"


def test_a_value_from_the_environment_elsewhere_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("API_HOST", HOST)
    (tmp_path / "devamb.yaml").write_text(
        "version: 1\nservices:\n  api:\n    listen: 9001\n"
        "    targets: {remote: 'https://${API_HOST}/v1'}\n")
    code, output = _run("export", "envoy")
    assert code == 1
    assert "a value read from the environment (${VAR}) would be written" in output
    assert [f for f in forms(HOST) if f in output] == []


def test_an_unset_variable_is_fine_in_headers_and_refused_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    (tmp_path / "devamb.yaml").write_text(PROFILE)
    code, output = _run("export", "envoy")
    assert code == 0 and "Bearer %ENVIRONMENT(API_TOKEN)%" in output
    monkeypatch.delenv("API_HOST", raising=False)
    (tmp_path / "devamb.yaml").write_text(
        "version: 1\nservices:\n  api:\n    listen: 9001\n"
        "    targets: {remote: 'https://${API_HOST}/v1'}\n")
    code, output = _run("export", "envoy")
    assert code == 1
    assert "devamb: devamb.yaml: ${API_HOST} is not set and the Envoy bootstrap needs its " \
           "value" in output


def test_credentials_in_a_url_are_not_exported(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "devamb.yaml").write_text(
        "version: 1\nservices:\n  api:\n    listen: 9001\n"
        "    targets: {basic: 'http://app:literal-pass@127.0.0.1:8002'}\n")
    code, output = _run("export", "envoy")
    assert code == 0
    assert "literal-pass" not in output
    assert "credentials in the URL are not exported" in output
