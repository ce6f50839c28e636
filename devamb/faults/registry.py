"""The explicit registry of fault kinds: one typed record each (key, parameter keys, parser,
class). Adding a kind is a module (Params, parse, the Fault subclass) and one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devamb.faults import (
    abort,
    bandwidth,
    down,
    error,
    latency,
    limit_data,
    malformed,
    reset,
    slicer,
    slow_close,
    timeout,
)
from devamb.faults.applies import Refusal
from devamb.faults.base import Fault, FaultContext
from devamb.profile.reader import Node

Parse = Callable[[Node, str], Any]  # (the fault's mapping, the service's protocol) -> Params | None


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault as profiles and the control API name it."""

    key: str  # `kind:` in a profile
    keys: tuple[str, ...]  # its own parameter keys, beside the common ones (spec.COMMON_KEYS)
    parse: Parse  # reports problems on the node; None when the parameters are unusable
    fault: type[Fault]  # what it does once it fires

    @property
    def protocols(self) -> tuple[str, ...]:
        """The service protocols it applies to (declared by the class, which acts on them)."""
        return self.fault.PROTOCOLS

    @property
    def refused(self) -> tuple[Refusal, ...]:
        """Where it cannot act, and why (declared by the class; see faults/applies.py)."""
        return self.fault.REFUSED

    @property
    def directions(self) -> tuple[str, ...]:
        """Where it may act; the first is the default."""
        return self.fault.DIRECTIONS

    def build(self, params: Any, ctx: FaultContext, direction: str, protocol: str) -> Fault:
        return self.fault(params, ctx, direction, protocol)


KINDS: dict[str, FaultKind] = {
    kind.key: kind
    for kind in (
        FaultKind("latency", latency.KEYS, latency.parse, latency.LatencyFault),
        FaultKind("abort", abort.KEYS, abort.parse, abort.AbortFault),
        FaultKind("reset", reset.KEYS, reset.parse, reset.ResetFault),
        FaultKind("timeout", timeout.KEYS, timeout.parse, timeout.TimeoutFault),
        FaultKind("bandwidth", bandwidth.KEYS, bandwidth.parse, bandwidth.BandwidthFault),
        FaultKind("slicer", slicer.KEYS, slicer.parse, slicer.SlicerFault),
        FaultKind("limit_data", limit_data.KEYS, limit_data.parse, limit_data.LimitDataFault),
        FaultKind("slow_close", slow_close.KEYS, slow_close.parse, slow_close.SlowCloseFault),
        FaultKind("malformed", malformed.KEYS, malformed.parse, malformed.MalformedFault),
        FaultKind("down", down.KEYS, down.parse, down.DownFault),
        FaultKind("error", error.KEYS, error.parse, error.ErrorFault),
    )
}
