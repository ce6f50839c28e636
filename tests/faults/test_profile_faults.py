"""Faults and scenarios in a profile: good ones load; bad ones are reported at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile
from devamb.faults import abort, latency
from devamb.faults.spec import Match
from tests.conftest import problems

HEAD = """\
version: 1
services:
  api:
    listen: 0
    targets: {up: echo}
    faults:
"""
TCP = """\
  raw:
    listen: 0
    protocol: tcp
    targets: {up: "tcp://127.0.0.1:1"}
    faults:
"""
KINDS = ("latency, abort, reset, timeout, bandwidth, slicer, limit_data, slow_close, malformed, "
         "down, error")


def test_a_full_fault_definition_loads(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(HEAD + """\
      slow:
        kind: latency
        delay: 300ms
        jitter: 50ms
        distribution: normal
        on: response
        probability: 0.5
        match: {path: /charge*, method: [post, PUT], header: {X-A: b*}}
        times: 3
        after: 2
        for: 30s
        enabled: false
      boom: {kind: abort, status: 502, body: nope, headers: {Retry-After: 5}}
    header_faults: true
""" + TCP + """\
      thin: {kind: bandwidth, rate: 256KiB, direction: both}
scenarios:
  outage:
    loop: true
    length: 1m
    steps:
      - {at: 0s, service: api, "on": slow}
      - {at: 10s, service: raw, add: {name: cut, kind: reset, after_bytes: 1KiB}}
      - {at: 20s, service: raw, remove: cut}
      - {at: 30s, service: api, clear: true}
""")
    profile = load_profile(path, environ={})
    api = profile.services["api"]
    assert api.header_faults is True and list(api.faults) == ["slow", "boom"]
    slow = api.faults["slow"]
    assert slow.params == latency.Params(0.3, 0.05, "normal", "response")
    assert slow.probability == 0.5 and slow.times == 3 and slow.after == 2
    assert slow.duration == 30.0 and slow.enabled is False and slow.direction == "downstream"
    assert slow.match == Match(frozenset({"POST", "PUT"}), "/charge*", {"X-A": "b*"})
    assert api.faults["boom"].params == abort.Params(502, "nope", {"Retry-After": "5"})
    thin = profile.services["raw"].faults["thin"]
    assert thin.params.rate == 256 * 1024 and thin.direction == "both"
    outage = profile.scenarios["outage"]
    assert outage.loop and outage.period == 60.0
    assert [(s.at, s.service, s.action, s.name) for s in outage.steps] == [
        (0.0, "api", "on", "slow"), (10.0, "raw", "add", None), (20.0, "raw", "remove", "cut"),
        (30.0, "api", "clear", None),
    ]
    assert outage.steps[1].fault is not None and outage.steps[1].fault.name == "cut"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "      f: {kind: explode}\n",
         [f"devamb.yaml:7:17: services.api.faults.f.kind: 'explode' is not one of {KINDS}"]),
        (HEAD + "      f: {delay: 1s}\n",
         [f"devamb.yaml:7:10: services.api.faults.f: missing required key 'kind' (one of "
          f"{KINDS})"]),
        (HEAD + "      f:\n        kind: latency\n",
         ["devamb.yaml:7:7: services.api.faults.f: missing required key 'delay' "
          "(e.g. delay: 300ms)"]),
        (HEAD + "      f: latency\n",
         ["devamb.yaml:7:10: services.api.faults.f: expected a mapping with at least 'kind'"]),
        (HEAD + "      f: {kind: abort, probability: 1.5}\n",
         ["devamb.yaml:7:37: services.api.faults.f.probability: 1.5 is out of range 0..1"]),
        (HEAD + "      f: {kind: abort, direction: upstream}\n",
         ["devamb.yaml:7:35: services.api.faults.f.direction: 'upstream' is not one of "
          "downstream"]),
        (HEAD + "      f: {kind: latency, delay: 1s, dealy: 1s}\n",
         ["devamb.yaml:7:37: services.api.faults.f.dealy: unknown key 'dealy' (did you mean "
          "'delay'?); expected one of kind, enabled, probability, direction, match, times, "
          "after, for, delay, jitter, distribution, on, per_message"]),
        (HEAD + "      f: {kind: latency, delay: soon}\n",
         ["devamb.yaml:7:33: services.api.faults.f.delay: 'soon' is not a duration "
          "(use e.g. 250ms, 2s, 1m)"]),
        (HEAD + "      f: {kind: abort, times: 0}\n",
         ["devamb.yaml:7:31: services.api.faults.f.times: times must be at least 1, got 0"]),
        (HEAD + "      f: {kind: abort, after: -1}\n",
         ["devamb.yaml:7:31: services.api.faults.f.after: after must be at least 0, got -1"]),
        (HEAD + "      f: {kind: abort, for: 1 hour}\n",
         ["devamb.yaml:7:29: services.api.faults.f.for: '1 hour' is not a duration "
          "(use e.g. 250ms, 2s, 1m)"]),
        (HEAD + "      f: {kind: abort, status: 700}\n",
         ["devamb.yaml:7:32: services.api.faults.f.status: 700 is out of range 200..599"]),
        (HEAD + "      f: {kind: bandwidth, rate: 0}\n",
         ["devamb.yaml:7:34: services.api.faults.f.rate: rate must be more than 0"]),
        (HEAD + "      f: {kind: slicer, size: 0}\n",
         ["devamb.yaml:7:31: services.api.faults.f.size: size must be more than 0"]),
        (HEAD + "      f: {kind: malformed, mode: weird}\n",
         ["devamb.yaml:7:34: services.api.faults.f.mode: 'weird' is not one of bad-chunk, "
          "garbage, empty, short-body"]),
        (HEAD + "      f: {kind: latency, delay: 1s, distribution: pareto}\n",
         ["devamb.yaml:7:51: services.api.faults.f.distribution: 'pareto' is not one of "
          "uniform, normal, lognormal"]),
        (HEAD + "      bad name: {kind: abort}\n",
         ["devamb.yaml:7:7: services.api.faults.bad name: fault name 'bad name' may use "
          "letters, digits, '_', '.', '-'"]),
        (HEAD + "      f: {kind: abort, match: {method: [1, 2]}}\n",
         ["devamb.yaml:7:40: services.api.faults.f.match.method: expected a method or a list "
          "of methods"]),
        (HEAD + "      f: {kind: abort, match: {paht: /x}}\n",
         ["devamb.yaml:7:32: services.api.faults.f.match.paht: unknown key 'paht' (did you "
          "mean 'path'?); expected one of method, path, header"]),
        (HEAD + "      ok: {kind: abort}\n" + TCP
         + "      f: {kind: latency, delay: 1s, match: {path: /x}}\n",
         ["devamb.yaml:13:44: services.raw.faults.f.match: 'match' applies to http, http2 and "
          "grpc services only (a tcp service has no requests to match)"]),
        (HEAD + "      ok: {kind: abort}\n" + TCP + "      f: {kind: abort}\n",
         ["devamb.yaml:13:17: services.raw.faults.f.kind: 'abort' faults apply to http, "
          "http2 and grpc services only: it answers with an HTTP status, and a tcp service "
          "relays bytes without HTTP to answer in"]),
        (HEAD + "      a: {kind: abort, status: 7}\n      b: {kind: latency}\n",
         ["devamb.yaml:7:32: services.api.faults.a.status: 7 is out of range 200..599",
          "devamb.yaml:8:10: services.api.faults.b: missing required key 'delay' "
          "(e.g. delay: 300ms)"]),
    ],
    ids=lambda v: v[0][:50] if isinstance(v, list) else None,
)
def test_bad_faults_are_reported_precisely(tmp_path: Path, text: str,
                                           expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_bad_scenarios_are_reported_precisely(tmp_path: Path) -> None:
    text = HEAD + """\
      ok: {kind: abort}
scenarios:
  s:
    steps:
      - {at: 0s, service: web, clear: true}
      - {at: 1s, service: api, "on": nope}
      - {at: soon, service: api, clear: true}
      - {at: 2s, service: api, "on": ok, "off": ok}
      - {at: 3s, service: api, add: {kind: explode}}
      - {service: api, clear: true}
  t: {loop: true}
  u: {steps: []}
  v: {steps: [{at: 0s, service: api, remove: gone}], lenght: 1m}
"""
    assert problems(tmp_path, text) == [
        "devamb.yaml:11:27: scenarios.s.steps.0.service: 'web' is not one of api",
        "devamb.yaml:12:38: scenarios.s.steps.1.on: 'nope' is not one of ok",
        "devamb.yaml:13:14: scenarios.s.steps.2.at: 'soon' is not a duration "
        "(use e.g. 250ms, 2s, 1m)",
        "devamb.yaml:14:9: scenarios.s.steps.3: a step does exactly one of add, on, off, "
        "remove, clear",
        f"devamb.yaml:15:44: scenarios.s.steps.4.add.kind: 'explode' is not one of {KINDS}",
        "devamb.yaml:16:9: scenarios.s.steps.5: missing required key 'at'",
        "devamb.yaml:17:6: scenarios.t: missing required key 'steps'",
        "devamb.yaml:18:14: scenarios.u.steps: expected a list of steps",
        "devamb.yaml:19:46: scenarios.v.steps.0.remove: 'gone' is not one of ok",
        "devamb.yaml:19:54: scenarios.v.lenght: unknown key 'lenght' (did you mean 'length'?); "
        "expected one of steps, loop, length",
    ]


def test_a_step_on_a_service_without_faults_says_so(tmp_path: Path) -> None:
    text = HEAD + "      ok: {kind: abort}\n" + TCP + "      {}\n" + """\
scenarios:
  s:
    steps:
      - {at: 0s, service: raw, "off": x}
"""
    assert problems(tmp_path, text) == [
        "devamb.yaml:17:39: scenarios.s.steps.0.off: service 'raw' has no faults to turn off "
        "(define them under its 'faults', or add them in an earlier step)",
    ]
