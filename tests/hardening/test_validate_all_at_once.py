"""`devamb validate` reports every problem of a profile in one run, each as FILE:LINE:COL with
its dotted path: a target, a health check, a scenario step or a fault with a missing required
key still has its other keys checked, and a TLS `ca:` file that `up` could not load (missing,
unreadable, not PEM) is found at validation, relative to the profile's folder.

Issue 15, weak spot "`validate` reports a bad target only after the other errors are fixed".
"""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from tests.certs import ca_pem

PROFILE = """\
services:
  api:
    listen: 0
    target: d
    targets:
      d:
        docker: {container: 7, run: sometimes}
      s:
        shards: [http://h1, 'ftp://h2']
        eject_after: 0
      p:
        endpoints: ['https://h3']
        health: {interval: 0s, healthy: 0}
        tls: {ca: certs/missing.pem}
      u: {url: 'https://h4', tls: {ca: certs/not-pem.pem}}
scenarios:
  t:
    loop: maybe
    steps:
      - {service: api, add: {kind: latency, jitter: lots}}
"""

EXPECTED = [
    "devamb.yaml:7:17: services.api.targets.d.docker: missing required key 'port'",
    "devamb.yaml:7:29: services.api.targets.d.docker.container: expected a string, got a number",
    "devamb.yaml:7:32: services.api.targets.d.docker.run: 'run' applies to image targets only",
    "devamb.yaml:8:7: services.api.targets.s: missing required key 'key'",
    "devamb.yaml:9:29: services.api.targets.s.shards.1: 'ftp://h2' is not a URL a http service "
    "can use: expected http:// or https://",
    "devamb.yaml:10:22: services.api.targets.s.eject_after: 0 is out of range 1..1000000",
    "devamb.yaml:13:17: services.api.targets.p.health: missing required key 'path'",
    "devamb.yaml:13:28: services.api.targets.p.health.interval: interval must be more than 0",
    "devamb.yaml:13:41: services.api.targets.p.health.healthy: 0 is out of range 1..100",
    "devamb.yaml:14:19: services.api.targets.p.tls.ca: cannot read CA file "
    "'certs/missing.pem': No such file or directory",
    "devamb.yaml:15:40: services.api.targets.u.tls.ca: CA file 'certs/not-pem.pem' holds no "
    "usable PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)",
    "devamb.yaml:18:11: scenarios.t.loop: expected true or false, got a string",
    "devamb.yaml:20:9: scenarios.t.steps.0: missing required key 'at'",
    "devamb.yaml:20:29: scenarios.t.steps.0.add: missing required key 'delay' (e.g. delay: "
    "300ms)",
    "devamb.yaml:20:53: scenarios.t.steps.0.add.jitter: 'lots' is not a duration (use e.g. "
    "250ms, 2s, 1m)",
]


def validate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devamb", "validate", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )


def test_every_problem_of_every_target_kind_comes_out_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "not-pem.pem").write_text("not a certificate\n")
    (tmp_path / "devamb.yaml").write_text(PROFILE)
    result = validate(tmp_path, "./devamb.yaml")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == EXPECTED


def test_an_unreadable_ca_file_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root reads any file: make it a folder instead, unreadable as a file
        (tmp_path / "ca.pem").mkdir()
        reason = "Is a directory"
    else:
        (tmp_path / "ca.pem").write_text("x")
        (tmp_path / "ca.pem").chmod(0)
        reason = "Permission denied"
    (tmp_path / "devamb.yaml").write_text(
        "services:\n  api:\n    listen: 0\n    targets:\n"
        "      x: {url: 'https://h', tls: {ca: ca.pem}}\n"
    )
    result = validate(tmp_path, "./devamb.yaml")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        f"devamb.yaml:5:39: services.api.targets.x.tls.ca: cannot read CA file 'ca.pem': {reason}"
    ]


def test_a_ca_file_is_found_beside_the_profile_from_another_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "certs").mkdir(parents=True)
    (folder / "certs" / "ca.pem").write_bytes(ca_pem())
    (folder / "devamb.yaml").write_text(
        "services:\n  api:\n    listen: 0\n    targets:\n"
        "      x: {url: 'https://h', tls: {ca: certs/ca.pem}}\n"
    )
    result = validate(tmp_path, "-p", "project/devamb.yaml")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "ok (1 services)" in result.stdout


# A profile using every target kind, policy, fault and scenario step; mutated below.
RICH = """\
services:
  a:
    listen: 9001
    target: d
    retries: {'on': [reset], budget: 1}
    faults: {f: {kind: latency, delay: 1s, jitter: 1s, match: {path: /x}}}
    targets:
      d: {docker: {image: redis, port: 6379, env: {A: b}, wait: 2s, run: on-up, volumes: [./x:/x]}}
      c: {docker: {compose: {service: web}, port: 80}}
      s: {shards: [http://h1, {url: 'https://h2', tls: {ca: x.pem}}], key: 'query:k', default: h1}
      p: {endpoints: ['https://h3'], health: {path: /h}, tls: {ca: x.pem}, balance: random}
      sp: {split: {s: 1, p: 2}, mirror: c}
      m: {mock: {routes: []}}
  b:
    listen: 9002
    protocol: tcp
    target: r
    targets: {r: {shards: ['tcp://h:1'], key: redis}, q: {endpoints: ['tcp://h:2']}}
scenarios:
  t:
    loop: true
    steps:
      - {at: 1s, service: a, add: {kind: abort, status: 500, name: z}}
      - {at: 2s, service: a, 'off': z}
      - {at: 3s, service: b, clear: true}
"""
JUNK: list[Any] = [None, 0, -1, "x", "", [], {}, [1], {"k": 1}, True, 10**9, "1s", "http://h"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*path, key))


def test_a_mangled_profile_gives_problems_never_a_traceback(tmp_path: Path) -> None:
    """Keys dropped and values replaced by junk anywhere: only positioned problems come out."""
    (tmp_path / "x.pem").write_bytes(ca_pem())
    base = yaml.safe_load(RICH)
    load_profile(_dump(tmp_path, base), environ={})  # the unmangled profile is valid
    paths = [p for p in _paths(base) if p]
    rng = random.Random(1)
    for _ in range(800):
        data = copy.deepcopy(base)
        for _ in range(rng.randint(1, 6)):
            *parents, last = rng.choice(paths)
            parent = data
            try:
                for key in parents:
                    parent = parent[key]
                if rng.random() < 0.4 and isinstance(parent, dict):
                    del parent[last]
                else:
                    parent[last] = rng.choice(JUNK)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed the way there
        try:
            load_profile(_dump(tmp_path, data), environ={})
        except ProfileError as exc:
            assert all(p.line >= 1 and p.col >= 1 for p in exc.problems)


def _dump(folder: Path, data: Any) -> Path:
    path = folder / "devamb.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
