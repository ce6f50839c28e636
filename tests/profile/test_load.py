"""Profiles: good ones load; each bad one is reported at FILE:LINE:COL with a clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devamb.engine.assembly import SERVICE_KEYS, load_profile
from devamb.faults.registry import KINDS as FAULT_KINDS
from devamb.profile import ProfileError, resolve_profile_path
from devamb.targets.url import UrlTargetSpec
from tests.conftest import load_problems

GOOD = """\
version: 1
name: shop
services:
  payments:
    listen: 9001
    target: staging
    timeout: 2s
    targets:
      local: http://127.0.0.1:8001
      staging:
        url: https://payments.example.com/api
        headers: {Authorization: "Bearer ${PAYMENTS_TOKEN}"}
      debug: echo
  cache:
    listen: "127.0.0.1:6380"
    protocol: tcp
    targets:
      local: tcp://127.0.0.1:6379
"""


def write(tmp_path: Path, text: str, name: str = "devamb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    return load_problems(write(tmp_path, text), env)


def test_good_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD), environ={"PAYMENTS_TOKEN": "s3cret-token"})
    assert profile.name == "shop" and list(profile.services) == ["payments", "cache"]
    payments = profile.services["payments"]
    assert payments.listen.port == 9001 and payments.listen.host == "127.0.0.1"
    assert payments.target == "staging" and payments.timeout == 2.0
    staging = payments.targets["staging"]
    assert isinstance(staging, UrlTargetSpec)
    assert staging.headers == {"Authorization": "Bearer s3cret-token"}
    assert staging.describe() == "https://payments.example.com/api"
    assert profile.secrets == frozenset({"s3cret-token"})
    cache = profile.services["cache"]
    assert cache.protocol == "tcp" and cache.target == "local"  # the only target is active


def test_dotenv_beside_the_profile_fills_variables(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nexport PAYMENTS_TOKEN='from-dotenv'\n")
    profile = load_profile(write(tmp_path, GOOD), environ={})
    assert profile.services["payments"].targets["staging"].headers["Authorization"] == (
        "Bearer from-dotenv"
    )


def test_environment_wins_over_dotenv_and_defaults_apply(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PAYMENTS_TOKEN=from-dotenv\n")
    text = GOOD.replace("${PAYMENTS_TOKEN}", "${PAYMENTS_TOKEN}-${REGION:-eu}")
    profile = load_profile(write(tmp_path, text), environ={"PAYMENTS_TOKEN": "from-env"})
    headers = profile.services["payments"].targets["staging"].headers
    assert headers["Authorization"] == "Bearer from-env-eu"


BAD_CASES = [
    (
        "yaml syntax",
        "version: 1\nservices:\n  api:\n    listen: 9001\n   target: x\n",
        ["devamb.yaml:5:4: YAML syntax: expected <block end>, but found '<block mapping start>'"],
    ),
    (
        "unknown key with suggestion",
        "version: 1\nservices:\n  api:\n    lisen: 9001\n    targets: {a: echo}\n",
        [
            "devamb.yaml:3:3: services.api: missing required key 'listen'",
            "devamb.yaml:4:5: services.api.lisen: unknown key 'lisen' (did you mean 'listen'?); "
            f"expected one of {', '.join(SERVICE_KEYS)}",
        ],
    ),
    (
        "active target not defined",
        "version: 1\nservices:\n  api:\n    listen: 9001\n    target: stagin\n"
        "    targets:\n      local: echo\n      staging: echo\n",
        ["devamb.yaml:5:13: services.api.target: 'stagin' is not one of local, staging"],
    ),
    (
        "two services on one address",
        "services:\n  a:\n    listen: 9001\n    targets: {x: echo}\n"
        "  b:\n    listen: '127.0.0.1:9001'\n    targets: {x: echo}\n",
        [
            "devamb.yaml:6:13: services.b.listen: 127.0.0.1:9001 is already the listener of "
            "service 'a'"
        ],
    ),
    (
        "bad duration",
        "services:\n  a:\n    listen: 9001\n    timeout: 3 seconds\n    targets: {x: echo}\n",
        [
            "devamb.yaml:4:14: services.a.timeout: '3 seconds' is not a duration (use e.g. 250ms, "
            "2s, 1m)"
        ],
    ),
    (
        "bad url scheme for http",
        "services:\n  a:\n    listen: 9001\n    targets:\n      x: ftp://host/\n",
        [
            "devamb.yaml:5:10: services.a.targets.x: 'ftp://host/' is not a URL a http service can "
            "use: expected http:// or https://"
        ],
    ),
    (
        "tcp service needs tcp url",
        "services:\n  a:\n    listen: 9001\n    protocol: tcp\n    targets:\n      x: http://h:1\n",
        [
            "devamb.yaml:6:10: services.a.targets.x: 'http://h:1' is not a URL a tcp service can "
            "use: expected tcp:// (a tcp service needs tcp://HOST:PORT)"
        ],
    ),
    (
        "variable not set",
        "services:\n  a:\n    listen: 9001\n    targets:\n      x:\n        url: http://h\n"
        "        headers: {Authorization: 'Bearer ${NOPE_TOKEN}'}\n",
        [
            "devamb.yaml:7:34: services.a.targets.x.headers.Authorization: environment variable "
            "NOPE_TOKEN is not set (set it, add it to .env, or write ${NOPE_TOKEN:-default})"
        ],
    ),
    (
        "wrong type for listen",
        "services:\n  a:\n    listen: [9001]\n    targets: {x: echo}\n",
        ["devamb.yaml:3:13: services.a.listen: expected a port or HOST:PORT, got a list"],
    ),
    (
        "port out of range",
        "services:\n  a:\n    listen: 70000\n    targets: {x: echo}\n",
        ["devamb.yaml:3:13: services.a.listen: port 70000 is out of range 0..65535"],
    ),
    (
        "unknown protocol",
        "services:\n  a:\n    listen: 9001\n    protocol: udp\n    targets: {x: echo}\n",
        ["devamb.yaml:4:15: services.a.protocol: 'udp' is not one of http, tcp, http2, grpc, "
         "postgres, redis"],
    ),
    (
        "mock file missing",
        "services:\n  a:\n    listen: 9001\n    targets:\n      m:\n        mock: m.yaml\n",
        [
            "devamb.yaml:6:15: services.a.targets.m.mock: cannot read mock file 'm.yaml': "
            "No such file or directory"
        ],
    ),
    (
        "duplicate key",
        "services:\n  a:\n    listen: 9001\n    listen: 9002\n    targets: {x: echo}\n",
        ["devamb.yaml:4:5: services.a.listen: duplicate key 'listen'"],
    ),
    (
        "unsupported version",
        "version: 2\nservices:\n  a:\n    listen: 9001\n    targets: {x: echo}\n",
        ["devamb.yaml:1:10: version: unsupported version 2; this devamb reads version 1"],
    ),
    (
        "no services",
        "version: 1\nservices: {}\n",
        ["devamb.yaml:2:11: services: define at least one service"],
    ),
    (
        "several problems at once, in file order",
        "services:\n  a:\n    listen: 9001\n    protocol: udp\n    timeout: soon\n"
        "    targets: {x: echo}\n",
        [
            "devamb.yaml:4:15: services.a.protocol: 'udp' is not one of http, tcp, http2, grpc, "
            "postgres, redis",
            "devamb.yaml:5:14: services.a.timeout: 'soon' is not a duration (use e.g. 250ms, 2s, "
            "1m)",
        ],
    ),
    (
        "localhost beside 127.0.0.1 on one port",
        "services:\n  a:\n    listen: 9001\n    targets: {x: echo}\n"
        "  b:\n    listen: localhost:9001\n    targets: {x: echo}\n",
        [
            "devamb.yaml:6:13: services.b.listen: localhost:9001 overlaps 127.0.0.1:9001, the "
            "listener of service 'a' (both would bind 127.0.0.1:9001)"
        ],
    ),
    (
        "a wildcard takes the port on every address of its family",
        "services:\n  a:\n    listen: 0.0.0.0:9001\n    targets: {x: echo}\n"
        "  b:\n    listen: 9001\n    targets: {x: echo}\n"
        "  c:\n    listen: '[::]:9002'\n    targets: {x: echo}\n"
        "  d:\n    listen: '[::1]:9002'\n    targets: {x: echo}\n"
        "  e:\n    listen: 9002\n    targets: {x: echo}\n",  # IPv4 beside IPv6-only [::]: fine
        [
            "devamb.yaml:6:13: services.b.listen: 127.0.0.1:9001 overlaps 0.0.0.0:9001, the "
            "listener of service 'a' (both would bind 127.0.0.1:9001)",
            "devamb.yaml:12:13: services.d.listen: [::1]:9002 overlaps [::]:9002, the listener "
            "of service 'c' (both would bind [::1]:9002)",
        ],
    ),
    (
        "every problem in one run, whatever else is wrong with the service",
        "services:\n  a:\n    targets: {x: 'ftp://h/'}\n"
        "  b c:\n    listen: 9001\n    targets: {x: 'htp://h'}\n"
        "  d:\n    listen: 9001\n    target: x\n"
        "scenarios:\n  s: {steps: [{at: 1s, service: a, add: x}, {at: 1s, service: zz, add: x}]}\n",
        [
            "devamb.yaml:2:3: services.a: missing required key 'listen'",
            "devamb.yaml:3:18: services.a.targets.x: 'ftp://h/' is not a URL a http service can "
            "use: expected http:// or https://",
            "devamb.yaml:4:3: services.b c: service name 'b c' may use letters, digits, '_', "
            "'.', '-'",
            "devamb.yaml:6:18: services.b c.targets.x: 'htp://h' is not a URL a http service "
            "can use: expected http:// or https://",
            "devamb.yaml:7:3: services.d: missing required key 'targets'",
            "devamb.yaml:8:13: services.d.listen: 127.0.0.1:9001 is already the listener of "
            "service 'b c'",
            "devamb.yaml:11:41: scenarios.s.steps.0.add: expected a mapping with at least 'kind'",
            "devamb.yaml:11:63: scenarios.s.steps.1.service: 'zz' is not one of (there is none "
            "without problems)",
            "devamb.yaml:11:72: scenarios.s.steps.1.add: expected a mapping with at least 'kind'",
        ],
    ),
    (
        "the target name devamb is reserved for requests devamb answers itself",
        "services:\n  a:\n    listen: 9001\n    target: x\n"
        "    targets:\n      devamb: echo\n      x: echo\n",
        [
            "devamb.yaml:6:7: services.a.targets.devamb: target name 'devamb' is reserved: it "
            "marks requests devamb answers itself",
        ],
    ),
    (
        "every problem of docker, shards, health and scenario steps in one run",
        "services:\n  a:\n    listen: 9001\n    target: d\n    targets:\n"
        "      d:\n        docker: {container: 7, run: sometimes}\n"
        "      s:\n        shards: [http://h1, 'ftp://h2']\n        eject_after: 0\n"
        "      p:\n        endpoints: [http://h3]\n        health: {interval: 0s, healthy: 0}\n"
        "scenarios:\n  t:\n    loop: maybe\n"
        "    steps:\n      - {service: a, add: {kind: latency, jitter: lots}}\n",
        [
            "devamb.yaml:7:17: services.a.targets.d.docker: missing required key 'port'",
            "devamb.yaml:7:29: services.a.targets.d.docker.container: expected a string, got a "
            "number",
            "devamb.yaml:7:32: services.a.targets.d.docker.run: 'run' applies to image targets "
            "only",
            "devamb.yaml:8:7: services.a.targets.s: missing required key 'key'",
            "devamb.yaml:9:29: services.a.targets.s.shards.1: 'ftp://h2' is not a URL a http "
            "service can use: expected http:// or https://",
            "devamb.yaml:10:22: services.a.targets.s.eject_after: 0 is out of range 1..1000000",
            "devamb.yaml:13:17: services.a.targets.p.health: missing required key 'path'",
            "devamb.yaml:13:28: services.a.targets.p.health.interval: interval must be more "
            "than 0",
            "devamb.yaml:13:41: services.a.targets.p.health.healthy: 0 is out of range 1..100",
            "devamb.yaml:16:11: scenarios.t.loop: expected true or false, got a string",
            "devamb.yaml:18:9: scenarios.t.steps.0: missing required key 'at'",
            "devamb.yaml:18:27: scenarios.t.steps.0.add: missing required key 'delay' "
            "(e.g. delay: 300ms)",
            "devamb.yaml:18:51: scenarios.t.steps.0.add.jitter: 'lots' is not a duration (use "
            "e.g. 250ms, 2s, 1m)",
        ],
    ),
    (
        "a wrong retry condition or balance policy hides none of the other keys",
        "services:\n  a:\n    listen: 9001\n    retries: {on: [bogus], budget: 99}\n"
        "    targets:\n      p: {endpoints: ['http://h'], balance: nope, hash_on: 'cookie:'}\n",
        [
            "devamb.yaml:4:19: services.a.retries.on: 'bogus' is not a retry condition; use "
            "connect-failure, reset, timeout, 502, 503, 504, 5xx, retriable-4xx",
            "devamb.yaml:4:36: services.a.retries.budget: 99 is out of range 0..10",
            "devamb.yaml:6:45: services.a.targets.p.balance: 'nope' is not one of round_robin, "
            "least_requests, random, hash",
            "devamb.yaml:6:60: services.a.targets.p.hash_on: 'cookie:' needs a name: cookie:NAME",
        ],
    ),
    (
        "a fault without a kind still has its other keys checked",
        "services:\n  a:\n    listen: 9001\n    targets: {x: echo}\n"
        "    faults:\n      f: {probability: 2, for: never}\n",
        [
            "devamb.yaml:6:10: services.a.faults.f: missing required key 'kind' (one of "
            f"{', '.join(FAULT_KINDS)})",
            "devamb.yaml:6:24: services.a.faults.f.probability: 2 is out of range 0..1",
            "devamb.yaml:6:32: services.a.faults.f.for: 'never' is not a duration (use e.g. "
            "250ms, 2s, 1m)",
        ],
    ),
    (
        "a CA file that is missing or not PEM is found at validation",
        "services:\n  a:\n    listen: 9001\n    target: x\n    targets:\n"
        "      x: {url: 'ftp://h', tls: {ca: certs/nope.pem}}\n"
        "      y: {url: 'https://h', tls: {ca: devamb.yaml}}\n"
        "      p: {endpoints: ['https://h'], tls: {ca: certs/nope.pem, verify: maybe}}\n"
        "      s: {shards: [{url: 'https://h', tls: {ca: certs/nope.pem}}], key: 'query:k'}\n",
        [
            "devamb.yaml:6:16: services.a.targets.x.url: 'ftp://h' is not a URL a http service "
            "can use: expected http:// or https://",
            "devamb.yaml:6:37: services.a.targets.x.tls.ca: cannot read CA file 'certs/nope.pem': "
            "No such file or directory",
            "devamb.yaml:7:39: services.a.targets.y.tls.ca: CA file 'devamb.yaml' holds no usable "
            "PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)",
            "devamb.yaml:8:47: services.a.targets.p.tls.ca: cannot read CA file 'certs/nope.pem': "
            "No such file or directory",
            "devamb.yaml:8:71: services.a.targets.p.tls.verify: expected true or false, got a "
            "string",
            "devamb.yaml:9:49: services.a.targets.s.shards.0.tls.ca: cannot read CA file "
            "'certs/nope.pem': No such file or directory",
        ],
    ),
    (
        "an active target beside a targets: that is not a mapping",
        "services:\n  a:\n    listen: 9001\n    target: x\n    targets: [1]\n",
        [
            "devamb.yaml:5:14: services.a.targets: expected a mapping of target names to "
            "targets, with at least one target",
        ],
    ),
    (
        "url without host",
        "services:\n  a:\n    listen: 9001\n    targets:\n      x: 'http://:80/'\n",
        ["devamb.yaml:5:10: services.a.targets.x: 'http://:80/' has no host"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_profile_is_reported_precisely(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_secrets_never_appear_in_messages(tmp_path: Path) -> None:
    text = "services:\n  a:\n    listen: 9001\n    targets:\n      x: '${SECRET_URL}'\n"
    found = problems(tmp_path, text, env={"SECRET_URL": "ftp://user:hunter22@host/"})
    assert found == [
        "devamb.yaml:5:10: services.a.targets.x: '${SECRET_URL}' is not a URL a "
        "http service can use: expected http:// or https://"
    ]
    assert "hunter22" not in "".join(found)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(tmp_path / "nope.yaml")
    assert "cannot read profile: No such file or directory" in str(info.value)


def test_profile_names_resolve_to_the_profiles_folder(tmp_path: Path) -> None:
    assert resolve_profile_path("staging", tmp_path) == tmp_path / "profiles" / "staging.yaml"
    # (`demo` with no profiles/demo.yaml here is the shipped one: tests/profile/test_shipped.py)
    assert resolve_profile_path("x/y.yaml", tmp_path) == tmp_path / "x" / "y.yaml"
    assert resolve_profile_path(None, tmp_path) == tmp_path / "devamb.yaml"
