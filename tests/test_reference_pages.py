"""The generated reference pages (scripts/reference_pages.py, filled in at each site build) list
exactly what the code has: every profile key at every place, every route with its parameters,
every filter term, every event type with its keys on the wire. Each expectation is read from the
code's own tables, not from the generator, so a generator that drops or invents a row fails."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devamb.cluster import health, outlier
from devamb.control import events as ev
from devamb.control.routes import TABLE
from devamb.engine import assembly
from devamb.engine.json_schema import TOP_INSPECT_KEYS, profile_schema
from devamb.engine.profile_docs import DOCS, places
from devamb.faults import scenario
from devamb.faults import spec as faults
from devamb.faults.registry import KINDS
from devamb.inspect.filter_terms import FLAGS, OPERATORS
from devamb.policies import breaker, retry
from devamb.profile.export_section import EXPORT_KEYS
from devamb.service import listener_tls
from devamb.targets import pool, split, url
from devamb.targets.docker import spec as docker
from devamb.targets.mock import grpc_rules, routes
from devamb.targets.mock import target as mock
from devamb.targets.shards import spec as shards
from devamb.tunnel import spec as tunnel

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- reference: ([\w-]+) -->$", re.M)


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reference_pages", ROOT / "scripts" / "reference_pages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(markdown: str) -> dict[str, list[list[str]]]:
    """Each `## ` heading's table rows (cells, first column's code span unwrapped); rows of a
    table before any heading go under ""."""
    out: dict[str, list[list[str]]] = {"": []}
    current = ""
    for line in markdown.splitlines():
        if line.startswith("#"):
            current = line.lstrip("#").strip()
            out.setdefault(current, [])
        elif line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[current].append(cells)
    return {k: v[1:] if v else v for k, v in out.items()}  # the header row off


def keys(rows: list[list[str]]) -> list[str]:
    return [r[0].strip("`") for r in rows]


# --- the markers --------------------------------------------------------------------------------


def test_every_marker_names_a_generator_and_every_generator_has_a_page(gen: ModuleType) -> None:
    used = {m for p in (ROOT / "docs").rglob("*.md") for m in MARKER.findall(p.read_text())}
    assert used == set(gen.PAGES)
    page = (ROOT / "docs" / "reference" / "events.md").read_text()
    expanded = gen.expand(page)
    assert "<!-- reference:" not in expanded and "| `exchange` |" in expanded


# --- the profile ----------------------------------------------------------------------------------


def test_every_key_place_has_a_description_and_no_description_is_stale() -> None:
    places_keys = {s.doc_path(k) for s in places(profile_schema()) for k in s.keys}
    assert places_keys - set(DOCS) == set(), "keys without a line in profile_docs.DOCS"
    assert set(DOCS) - places_keys == set(), "profile_docs.DOCS describes keys the loader lacks"
    assert all(d.type and d.default and d.text for d in DOCS.values())


def test_the_json_schema_carries_each_keys_description() -> None:
    for section in places(profile_schema()):
        for key, value in section.keys.items():
            assert value.get("description") == DOCS[section.doc_path(key)].text, key


S = "`services.<service>"
T = f"{S}.targets.<target>"
M = f"{T}(mock).mock"


def expected_profile() -> dict[str, tuple[str, ...]]:
    """Heading → keys, from the loader's own tables."""
    command = tuple(k for ks in faults.COMMAND_MATCH_KEYS.values() for k in ks)
    out: dict[str, tuple[str, ...]] = {
        "Top level": assembly.TOP_KEYS,
        "`inspect`": TOP_INSPECT_KEYS,
        "`export`": EXPORT_KEYS,
        "`bastions.<bastion>`": tunnel.KEYS,
        "`scenarios.<scenario>`": scenario.SCENARIO_KEYS,
        "`scenarios.<scenario>.steps[]`": scenario.STEP_KEYS,
        f"{S}`": assembly.SERVICE_KEYS,
        f"{S}.inspect`": assembly.INSPECT_KEYS,
        f"{S}.retries`": retry.KEYS,
        f"{S}.circuit_breaker`": breaker.KEYS,
        f"{S}.tls`": listener_tls.KEYS,
        "Target `url`": url.KEYS,
        f"{T}(url).tls`": url.TLS_KEYS,
        "Target `echo`": ("echo",),
        "Target `docker`": ("docker",),
        f"{T}(docker).docker`": docker.KEYS,
        f"{T}(docker).docker.compose`": ("project", "service"),
        "Target `pool`": pool.KEYS,
        f"{T}(pool).health`": health.KEYS,
        f"{T}(pool).outlier`": outlier.KEYS,
        "Target `split`": split.KEYS,
        "Target `shards`": shards.KEYS,
        "Target `mock`": mock.KEYS,
        f"{M}`": routes.TOP_KEYS,
        f"{M}.routes[]`": routes.ROUTE_KEYS,
        f"{M}.routes[].match`": routes.MATCH_KEYS,
        f"{M}.routes[].respond`": routes.RESPOND_KEYS,
        f"{M}.grpc[]`": grpc_rules.RULE_KEYS,
        "Faults: every kind": faults.COMMON_KEYS,
        f"{S}.faults.<fault>.match`": faults.MATCH_KEYS + command,
    }
    out.update({f"Fault `{name}`": kind.keys for name, kind in KINDS.items()})
    return out


def test_profile_page_lists_every_key_of_every_place(gen: ModuleType) -> None:
    page = sections(gen.profile())
    page.pop("")
    expected = expected_profile()
    assert set(page) == set(expected)
    for heading, want in expected.items():
        assert keys(page[heading]) == list(dict.fromkeys(want)), heading
        assert all(len(row) == 4 and all(row) for row in page[heading]), heading


def test_profile_page_names_each_fault_kinds_protocols(gen: ModuleType) -> None:
    text = gen.profile()
    for name, kind in KINDS.items():
        assert f"`kind: {name}`, beside the keys every fault has; services: " \
               f"{', '.join(kind.protocols)}" in text


# --- the control API ------------------------------------------------------------------------------


def test_control_api_page_lists_every_route_with_its_parameters(gen: ModuleType) -> None:
    page = sections(gen.control_api())
    index = {(r[0], re.sub(r"^\[`(.*)`\].*$", r"\1", r[1])) for r in page[""]}
    assert index == {(r.method, r.path) for r in TABLE}
    assert all(r[2] for r in page[""]), "a route without a summary"
    for route in TABLE:
        heading = next(h for h in page if h.startswith(f"`{route.method} {route.path}`"))
        rows = page[heading]
        assert keys(rows) == [a.key for a in route.args], route.name
        for row, arg in zip(rows, route.args, strict=True):
            assert row[1:] == [arg.where, arg.type.__name__, "yes" if arg.required else "no"]


# --- filters --------------------------------------------------------------------------------------


def test_filter_page_lists_every_term(gen: ModuleType) -> None:
    page = sections(gen.filters())
    written = {t for row in page[""] for t in re.findall(r"`~(\w+)", row[0])}
    assert written == set(OPERATORS) | set(FLAGS)
    assert all(row[1] for row in page[""]), "a term without a line"
    assert "Combining terms" in page


# --- events ---------------------------------------------------------------------------------------


def event_kinds() -> list[type[ev.EngineEvent]]:
    return [c for c in vars(ev).values()
            if isinstance(c, type) and issubclass(c, ev.EngineEvent) and c.TYPE]


def wire_keys(kind: type[ev.EngineEvent]) -> set[str]:
    """The keys an event of this kind has on the wire (from `to_json()` of one)."""
    values: dict[str, Any] = {f.name: None for f in dataclasses.fields(kind) if f.name != "time"}
    return set(kind(**values).to_json()) - {"type", "time"}


def test_events_page_lists_every_type_with_its_wire_keys(gen: ModuleType) -> None:
    rows = sections(gen.events())[""]
    documented = {r[0].strip("`"): set(re.findall(r"`(\w+)` \(", r[1])) for r in rows}
    assert documented == {k.TYPE: wire_keys(k) for k in event_kinds()}
    assert all(r[2] for r in rows), "an event type without a line"


def test_events_page_lists_the_keys_of_the_shapes_events_carry(gen: ModuleType) -> None:
    from devamb.control.protocol import ExchangeSummary, ServiceStats

    page = sections(gen.events())
    for shape in (ExchangeSummary, ServiceStats):
        assert keys(page[shape.__name__]) == list(shape.__annotations__), shape.__name__
    optional = {r[0].strip("`") for r in page["ExchangeSummary"] if r[2] == "no"}
    assert {"method", "path", "status", "faults", "replay_of", "notes"} <= optional
    assert "id" not in optional and "ForwardRef" not in gen.events()


def test_control_api_page_lists_the_keys_of_the_shapes_routes_answer(gen: ModuleType) -> None:
    from devamb.control import protocol

    page = sections(gen.control_api())
    for shape in (protocol.Status, protocol.EngineInfo, protocol.ServiceStatus,
                  protocol.TargetStatus, protocol.ServiceStats, protocol.ExchangeSummary):
        assert keys(page[shape.__name__]) == list(shape.__annotations__), shape.__name__
