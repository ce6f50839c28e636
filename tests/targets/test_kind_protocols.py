"""Every target kind by every service protocol: a kind serves the protocols its registry record
lists, and any other is refused when the profile is validated, at FILE:LINE:COL of the kind's
key (never at the first request). A kind that is accepted is built with its service's context.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.engine.assembly import PROTOCOLS, load_profile
from devamb.profile import ProfileError
from devamb.targets.base import Target
from devamb.targets.registry import KINDS, build_targets
from devamb.wire import WIRE_PROTOCOLS, transport

# One entry of each kind, valid for each protocol (a split's member is the sibling `a`).
ENTRIES: dict[str, dict[str, str]] = {
    "url": {
        "http": "{url: 'http://127.0.0.1:1'}", "tcp": "{url: 'tcp://127.0.0.1:1'}",
        "http2": "{url: 'http://127.0.0.1:1'}", "grpc": "{url: 'http://127.0.0.1:1'}",
    },
    "echo": {p: "{echo: true}" for p in PROTOCOLS},
    "docker": {p: "{docker: {container: api-dev, port: 8080}}" for p in PROTOCOLS},
    "endpoints": {
        "http": "{endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2']}",
        "tcp": "{endpoints: ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:2']}",
        "http2": "{endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2']}",
        "grpc": "{endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2']}",
    },
    "split": {p: "{split: {a: 1}}" for p in PROTOCOLS},
    "shards": {
        "http": "{shards: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], key: 'header:X-User'}",
        "tcp": "{shards: ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:2'], key: redis}",
        "http2": "{shards: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], key: 'header:X-User'}",
        "grpc": "{shards: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], key: 'header:X-User'}",
    },
    "mock": {p: "{mock: {grpc: []}}" if p in ("http2", "grpc") else "{mock: {routes: []}}"
             for p in PROTOCOLS},
}
SIBLING = {
    "http": "http://127.0.0.1:1", "tcp": "tcp://127.0.0.1:1", "http2": "http://127.0.0.1:1",
    "grpc": "http://127.0.0.1:1",
}
# postgres and redis services are tcp relays to their targets: the tcp entries serve them
for _wire in WIRE_PROTOCOLS:
    SIBLING[_wire] = SIBLING["tcp"]
    for _entries in ENTRIES.values():
        _entries.setdefault(_wire, _entries["tcp"])
ENTRY_LINE = 9  # the line of `t:` in the profile below


def write_profile(folder: Path, protocol: str, entry: str) -> Path:
    path = folder / "devamb.yaml"
    path.write_text(
        "version: 1\n"
        "services:\n"
        "  api:\n"
        "    listen: 0\n"
        f"    protocol: {protocol}\n"
        "    target: a\n"
        "    targets:\n"
        f"      a: {SIBLING[protocol]}\n"
        f"      t: {entry}\n"
    )
    return path


def test_every_kind_has_an_entry_for_every_protocol() -> None:
    assert set(ENTRIES) == set(KINDS)  # a new kind joins the matrix below
    for kind in KINDS.values():
        assert set(ENTRIES[kind.key]) == set(PROTOCOLS)
        assert kind.protocols and kind.protocols <= set(PROTOCOLS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("key", list(KINDS))
def test_a_kind_serves_its_protocols_and_is_refused_on_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, protocol: str
) -> None:
    monkeypatch.chdir(tmp_path)
    kind = KINDS[key]
    entry = ENTRIES[key][protocol]
    path = write_profile(tmp_path, protocol, entry)
    if protocol not in kind.protocols:
        with pytest.raises(ProfileError) as caught:
            load_profile(path, environ={})
        column = len("      t: {") + 1  # the kind's key inside the flow mapping
        served = " and ".join(sorted(kind.protocols))
        why = f" ({kind.why[protocol]})" if protocol in kind.why else ""
        assert [str(p) for p in caught.value.problems] == [
            f"devamb.yaml:{ENTRY_LINE}:{column}: services.api.targets.t.{key}: "
            f"{key} targets serve {served} services only{why}; this is a {protocol} service"
        ]
        return
    spec = load_profile(path, environ={}).services["api"]
    assert spec.targets["t"].kind == key
    context = spec.target_context(lambda level, message: None, "token")
    targets = build_targets(spec.targets, context)
    built = targets["t"]
    assert isinstance(built, Target) and built.name == "t"
    assert (built.context.service, built.context.protocol) == ("api", transport(protocol))
    assert built.context.timeout == spec.timeout and built.replay_token == "token"
    assert dict(built.context.siblings) == targets  # every target of the service, by name
    with pytest.raises(TypeError):
        built.context.siblings["x"] = built  # type: ignore[index]  # a read-only view


def test_a_refused_target_reports_only_the_refusal_and_every_one_comes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry of a refused kind is not read further (its own mistakes would be noise), and
    the other problems of the profile still come out in the same run."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "devamb.yaml"
    path.write_text(
        "version: 1\n"
        "services:\n"
        "  cache:\n"
        "    listen: 0\n"
        "    protocol: tcp\n"
        "    target: a\n"
        "    targets:\n"
        "      a: tcp://127.0.0.1:1\n"
        "      m1: {mock: {routes: 7}, fallback: nonsense}\n"
        "      m2:\n"
        "        mock: stubs.yaml\n"
        "    timeout: soon\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "devamb.yaml:9:12: services.cache.targets.m1.mock: mock targets serve grpc and http "
        "and http2 services only; this is a tcp service",
        "devamb.yaml:11:9: services.cache.targets.m2.mock: mock targets serve grpc and http "
        "and http2 services only; this is a tcp service",
        "devamb.yaml:12:14: services.cache.timeout: 'soon' is not a duration "
        "(use e.g. 250ms, 2s, 1m)",
    ]
