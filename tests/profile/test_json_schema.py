"""The JSON Schema of devamb.yaml says what the loader says: at every place the loader checks
keys, the schema allows exactly those keys; the shipped profiles validate against it; `devamb
schema` prints it and `devamb init` points the profile it writes at it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from devamb.engine.json_schema import profile_schema
from devamb.faults.spec import COMMAND_MATCH_KEYS
from devamb.profile.source import load_source
from tests.conftest import devamb
from tests.test_docs import PROBE, fault_kinds, known_keys

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "profiles").glob("*.yaml"))


def probe_data() -> Any:
    """The probe profile of tests/test_docs.py (an unknown key at every place), as data."""
    extra = "\n".join(f"      k{i}: {{kind: {kind}, zzz: 1}}" for i, kind in enumerate(
        fault_kinds()))
    return load_source(PROBE % {"faults": extra}, "probe.yaml").data


def branch(node: dict[str, Any], data: Any) -> dict[str, Any]:
    """The branch of an `anyOf` that `data` is meant for (its required keys and consts)."""
    if "anyOf" not in node:
        return node
    fits = [
        b for b in node["anyOf"]
        if b.get("type") == "object" and isinstance(data, dict)
        and set(b.get("required", ())) <= set(data)
        and all(data.get(k) == p["const"] for k, p in b["properties"].items() if "const" in p)
    ]
    assert len(fits) == 1, f"{len(fits)} branches fit {data!r}"
    return fits[0]


def schema_at(schema: dict[str, Any], data: Any, where: str) -> dict[str, Any]:
    node = branch(schema, data)
    for part in where.split(".") if where else []:
        if node.get("type") == "array":
            data, node = data[int(part)], node["items"]
        else:
            data = data[part]
            props = node.get("properties", {})
            node = props[part] if part in props else node["additionalProperties"]
        node = branch(node, data)
    return node


def test_every_place_allows_exactly_the_keys_the_loader_knows() -> None:
    schema, data = profile_schema(), probe_data()
    places = known_keys()
    assert len(places) >= 20
    differ = {}
    for where, (_, keys) in places.items():
        node = schema_at(schema, data, where)
        assert node.get("additionalProperties") is False, where
        if re.search(r"\.faults\.[^.]+\.match$", where):  # every protocol's: postgres, redis add
            keys = [*keys, *(k for ks in COMMAND_MATCH_KEYS.values() for k in ks)]
        if set(node["properties"]) != set(keys):
            differ[where or "(top)"] = (sorted(set(node["properties"]) - set(keys)),
                                        sorted(set(keys) - set(node["properties"])))
    assert not differ, f"schema-only keys, loader-only keys by place: {differ}"


def test_every_fault_kind_is_in_the_schema() -> None:
    service = profile_schema()["properties"]["services"]["additionalProperties"]
    kinds = [b["properties"]["kind"]["const"]
             for b in service["properties"]["faults"]["additionalProperties"]["anyOf"]]
    assert kinds == fault_kinds()


def validator() -> Any:
    """A validator of the schema (the jsonschema package is in the test extra)."""
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(profile_schema())
    return jsonschema.Draft202012Validator(profile_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_profile_validates_against_the_schema(path: Path) -> None:
    data = load_source(path.read_text(), str(path)).data  # YAML 1.2-like: `on:` stays a string
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator().iter_errors(data)]
    assert not problems


def test_the_schema_is_a_valid_schema_and_refuses_unknown_keys() -> None:
    check = validator()
    good = {"version": 1, "services": {"a": {"listen": 0, "targets": {"e": "echo"}}}}
    assert check.is_valid(good)
    bad = {"version": 1, "services": {"a": {"listen": 0, "targets": {"e": "echo"}, "zzz": 1}}}
    assert not check.is_valid(bad)


async def test_devamb_schema_prints_or_writes_it(tmp_path: Path) -> None:
    rc, out, err = await devamb("schema", cwd=tmp_path)
    assert rc == 0, err
    assert json.loads(out) == profile_schema()
    rc, _, err = await devamb("schema", "-o", "s.json", cwd=tmp_path)
    assert rc == 0, err
    assert json.loads((tmp_path / "s.json").read_text()) == profile_schema()


async def test_init_points_the_profile_at_the_schema_written_beside_it(tmp_path: Path) -> None:
    rc, _, err = await devamb("init", cwd=tmp_path)
    assert rc == 0, err
    first = (tmp_path / "devamb.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./devamb.schema.json"
    assert json.loads((tmp_path / "devamb.schema.json").read_text()) == profile_schema()
    data = load_source((tmp_path / "devamb.yaml").read_text(), "devamb.yaml").data
    assert validator().is_valid(data)
    assert (await devamb("validate", cwd=tmp_path))[0] == 0
