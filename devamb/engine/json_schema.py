"""A JSON Schema of devamb.yaml, generated from the loader's own key tables.

Every mapping's keys come from the tuple the loader checks that mapping with (`node.mapping(…)`),
imported here rather than written again, so the schema cannot fall behind the loader;
tests/profile/test_json_schema.py compares it with what the loader answers at each place. Values
are described only as far as their shape goes (a mapping, a list, a choice of words): the loader
stays the judge of values, with FILE:LINE:COL problems the schema cannot give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from devamb import __version__
from devamb.cluster import health, outlier
from devamb.engine import assembly
from devamb.engine.profile_docs import describe
from devamb.faults import scenario
from devamb.faults import spec as faults
from devamb.faults.registry import KINDS as FAULT_KINDS
from devamb.grpc.profile import KEYS as GRPC_SCHEMA_KEYS
from devamb.policies import breaker, retry
from devamb.profile.export_section import EXPORT_KEYS
from devamb.service import listener_tls
from devamb.targets import pool, split, url
from devamb.targets.docker import spec as docker
from devamb.targets.mock import grpc_rules, routes
from devamb.targets.mock import target as mock
from devamb.targets.shards import spec as shards
from devamb.tunnel import spec as tunnel

SCHEMA_ID = "https://devamb.invalid/schema/devamb.yaml.json"
TOP_INSPECT_KEYS = ("budget",)  # `inspect:` at the top (the service's own has INSPECT_KEYS)
ANY: dict[str, Any] = {}
STRING = {"type": "string"}
OBJECT = {"type": "object"}
LIST = {"type": "array"}


def mapping(keys: Iterable[str], required: Iterable[str] = (),
            **values: Mapping[str, Any]) -> dict[str, Any]:
    """An object with exactly `keys` (each value `values[key]`, else anything)."""
    keys = list(dict.fromkeys(keys))
    unknown = set(values) - set(keys)
    assert not unknown, f"described keys the table lacks: {unknown}"
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: dict(values.get(k, ANY)) for k in keys},
        "additionalProperties": False,
    }
    if required := list(required):
        out["required"] = required
    return out


def named(value: Mapping[str, Any]) -> dict[str, Any]:
    """An object of entries by name (services, targets, faults, …)."""
    return {"type": "object", "additionalProperties": dict(value)}


def one_of_shapes(*shapes: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(s) for s in shapes]}


def fault_schema() -> dict[str, Any]:
    command_keys = [k for keys in faults.COMMAND_MATCH_KEYS.values() for k in keys]
    match = mapping([*faults.MATCH_KEYS, *command_keys])
    return one_of_shapes(*(
        {"title": name, **mapping(faults.COMMON_KEYS + kind.keys, required=("kind",),
                                  kind={"const": name}, match=match)}
        for name, kind in FAULT_KINDS.items()
    ))


def mock_schema() -> dict[str, Any]:
    route = mapping(routes.ROUTE_KEYS, match=mapping(routes.MATCH_KEYS),
                    respond=mapping(routes.RESPOND_KEYS), sequence=LIST)
    grpc_rule = mapping(grpc_rules.RULE_KEYS, required=("method",))
    inline = mapping(routes.TOP_KEYS, routes={"type": "array", "items": route},
                     grpc={"type": "array", "items": grpc_rule})
    return {"title": "mock",
            **mapping(mock.KEYS, required=("mock",), mock=one_of_shapes(STRING, inline))}


def target_schema() -> dict[str, Any]:
    compose = one_of_shapes(STRING, mapping(("project", "service"), required=("service",)))
    docker_inner = mapping(docker.KEYS, required=("port",), compose=compose,
                           env=OBJECT, labels=OBJECT, command=one_of_shapes(STRING, LIST))
    kinds = [  # each titled with its kind (devamb/engine/profile_docs.py names places by it)
        {"title": "url", **mapping(url.KEYS, required=("url",), url=STRING, headers=OBJECT,
                                   tls=mapping(url.TLS_KEYS))},
        {"title": "echo", **mapping(("echo",), required=("echo",))},
        {"title": "docker", **mapping(("docker",), required=("docker",), docker=docker_inner)},
        {"title": "pool", **mapping(pool.KEYS, required=("endpoints",), endpoints=LIST,
                                    headers=OBJECT, health=mapping(health.KEYS),
                                    outlier=mapping(outlier.KEYS))},
        {"title": "split", **mapping(split.KEYS, required=("split",), split=OBJECT)},
        {"title": "shards", **mapping(shards.KEYS, required=("shards", "key"))},
        mock_schema(),
    ]
    return one_of_shapes({"type": "string", "description": "a URL, or `echo`"}, *kinds)


def service_schema() -> dict[str, Any]:
    assert set(GRPC_SCHEMA_KEYS) <= set(assembly.SERVICE_KEYS)
    return mapping(
        assembly.SERVICE_KEYS, required=("listen", "targets"),
        listen=one_of_shapes({"type": "integer"}, STRING),
        protocol={"enum": list(assembly.PROTOCOLS)},
        on_switch={"enum": list(assembly.ON_SWITCH)},
        target=STRING,
        targets=named(target_schema()),
        faults=named(fault_schema()),
        inspect=mapping(assembly.INSPECT_KEYS),
        retries=mapping(retry.KEYS),
        circuit_breaker=mapping(breaker.KEYS),
        tls=mapping(listener_tls.KEYS, required=listener_tls.KEYS),
    )


def profile_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a devamb.yaml profile."""
    step = mapping(scenario.STEP_KEYS, required=("at", "service"))
    top = mapping(
        assembly.TOP_KEYS, required=("services",),
        version={"const": 1},
        name=STRING,
        services=named(service_schema()),
        scenarios=named(mapping(scenario.SCENARIO_KEYS, required=("steps",),
                                steps={"type": "array", "items": step})),
        inspect=mapping(TOP_INSPECT_KEYS),
        toxiproxy_api=one_of_shapes(STRING, {"type": "boolean"}),
        export=mapping(EXPORT_KEYS),
        bastions=named(one_of_shapes(STRING, mapping(tunnel.KEYS, required=("host",)))),
    )
    describe(top)  # each key's line from profile_docs.DOCS, for editors' hints
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "devamb profile (devamb.yaml)",
        "description": f"Generated by `devamb schema` (devamb {__version__}) from the loader's "
                       f"key tables; `devamb validate` checks values too.",
        **top,
    }
