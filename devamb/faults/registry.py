"""The explicit registry of fault kinds: one module each (KEYS, Params, parse, FAULT)."""

from __future__ import annotations

from types import ModuleType

from devamb.faults import (
    abort,
    bandwidth,
    down,
    latency,
    limit_data,
    malformed,
    reset,
    slicer,
    slow_close,
    timeout,
)

KINDS: dict[str, ModuleType] = {
    "latency": latency,
    "abort": abort,
    "reset": reset,
    "timeout": timeout,
    "bandwidth": bandwidth,
    "slicer": slicer,
    "limit_data": limit_data,
    "slow_close": slow_close,
    "malformed": malformed,
    "down": down,
}
