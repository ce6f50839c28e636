"""Toxiproxy toxics as devamb TCP faults: the toxic's JSON (as Toxiproxy reads and writes it)
and the fault the engine runs for it.

Toxiproxy's attributes are integers in its own units (milliseconds, KB/s, microseconds);
devamb's faults take seconds and bytes. A toxic keeps Toxiproxy's attributes as they were
sent, so that clients read back what they wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devamb.toxiproxy.errors import (
    ApiError,
    bad_request_body,
    invalid_stream,
    invalid_toxic_type,
)

STREAMS = ("upstream", "downstream")
Fault = dict[str, Any]  # a fault as the control API takes it (kind, params, probability, ...)


@dataclass(frozen=True)
class ToxicType:
    """One Toxiproxy toxic type: its attributes (name -> default) and the fault it becomes."""

    attributes: dict[str, int]
    fault: Callable[[dict[str, int]], Fault | None]  # None: nothing to run (noop, rate 0)


def _ms(value: int) -> float:
    return value / 1000


def _latency(a: dict[str, int]) -> Fault:
    return {"kind": "latency", "delay": _ms(a["latency"]), "jitter": _ms(a["jitter"])}


def _bandwidth(a: dict[str, int]) -> Fault | None:
    # Toxiproxy's rate is KB/s (1000 bytes); 0 or less: no limit, as there
    return {"kind": "bandwidth", "rate": a["rate"] * 1000} if a["rate"] > 0 else None


def _slicer(a: dict[str, int]) -> Fault:
    # size_variation is not modelled: every slice is average_size bytes
    return {"kind": "slicer", "size": max(1, a["average_size"]), "delay": a["delay"] / 1e6}


TYPES: dict[str, ToxicType] = {
    "noop": ToxicType({}, lambda a: None),
    "latency": ToxicType({"latency": 0, "jitter": 0}, _latency),
    "bandwidth": ToxicType({"rate": 0}, _bandwidth),
    "slow_close": ToxicType({"delay": 0},
                            lambda a: {"kind": "slow_close", "delay": _ms(a["delay"])}),
    "timeout": ToxicType({"timeout": 0},
                         lambda a: {"kind": "timeout", "timeout": _ms(a["timeout"])}),
    # reset at the first byte in the stream (Toxiproxy waits `timeout` ms first: not modelled)
    "reset_peer": ToxicType({"timeout": 0}, lambda a: {"kind": "reset", "after_bytes": 0}),
    "slicer": ToxicType({"average_size": 0, "size_variation": 0, "delay": 0}, _slicer),
    "limit_data": ToxicType({"bytes": 0}, lambda a: {"kind": "limit_data", "bytes": a["bytes"]}),
}
DIRECTED = ("latency", "bandwidth", "reset", "slicer", "limit_data")  # faults with a direction


@dataclass
class Toxic:
    """A toxic as Toxiproxy shows it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"attributes": dict(self.attributes), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}

    def fault(self) -> Fault | None:
        """The devamb fault for this toxic (named as the toxic); None for a noop."""
        fault = TYPES[self.type].fault(self.attributes)
        if fault is None:
            return None
        fault["name"] = self.name
        fault["probability"] = min(1.0, max(0.0, self.toxicity))
        if fault["kind"] in DIRECTED:
            fault["direction"] = self.stream
        return fault


def _attributes(kind: str, given: object, base: dict[str, int]) -> dict[str, int]:
    if given is None:
        return dict(base)
    if not isinstance(given, dict):
        raise bad_request_body("json: cannot unmarshal attributes: expected an object")
    merged = dict(base)
    for key, value in given.items():
        if key not in base:
            continue  # Go's decoder ignores unknown fields too
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request_body(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                f"{kind}.attributes.{key} of type int64")
        merged[key] = int(value)
    return merged


def new_toxic(body: object) -> Toxic:
    """A toxic from a POST body (Toxiproxy's defaults: downstream, toxicity 1, name
    TYPE_STREAM); ApiError 400 as Toxiproxy answers it."""
    if not isinstance(body, dict):
        raise bad_request_body("json: cannot unmarshal into Go value of type toxics.ToxicWrapper")
    stream = body.get("stream", "downstream")
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise invalid_stream()
    kind = body.get("type", "")
    name = body.get("name") or f"{kind}_{stream}"
    toxicity = body.get("toxicity", 1.0)
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
        raise bad_request_body("json: cannot unmarshal toxicity: expected a number")
    if not isinstance(kind, str) or kind not in TYPES:
        raise invalid_toxic_type()
    if not isinstance(name, str):
        raise bad_request_body("json: cannot unmarshal name: expected a string")
    attributes = _attributes(kind, body.get("attributes"), TYPES[kind].attributes)
    return Toxic(name, kind, stream.lower(), float(toxicity), attributes)


def updated_toxic(toxic: Toxic, body: object) -> Toxic:
    """The toxic with a POST/PATCH body's attributes and toxicity over its own."""
    if not isinstance(body, dict):
        raise bad_request_body("json: cannot unmarshal into Go value")
    toxicity = body.get("toxicity", toxic.toxicity)
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
        raise bad_request_body("json: cannot unmarshal toxicity: expected a number")
    attributes = _attributes(toxic.type, body.get("attributes"), toxic.attributes)
    return Toxic(toxic.name, toxic.type, toxic.stream, float(toxicity), attributes)


__all__ = ["STREAMS", "TYPES", "ApiError", "Toxic", "new_toxic", "updated_toxic"]
