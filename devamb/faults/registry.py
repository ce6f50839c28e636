"""The explicit registry of fault kinds: one typed record each (key, parameter keys, parser,
class). Adding a kind is a module (KEYS, Params, parse, the Fault subclass) and one line here.

A kind's module is imported when a profile or a control call first uses the kind: an engine
without faults loads none of them (issue 22: RSS)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from devamb.faults.applies import Refusal
from devamb.faults.base import Fault, FaultContext
from devamb.profile.reader import Node

Parse = Callable[[Node, str], Any]  # (the fault's mapping, the service's protocol) -> Params | None


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault as profiles and the control API name it."""

    key: str  # `kind:` in a profile
    module: str  # devamb.faults.MODULE: KEYS, parse and the class
    class_name: str

    def _module(self) -> ModuleType:
        return importlib.import_module(f"devamb.faults.{self.module}")

    @property
    def keys(self) -> tuple[str, ...]:
        """Its own parameter keys, beside the common ones (spec.COMMON_KEYS)."""
        keys: tuple[str, ...] = self._module().KEYS
        return keys

    @property
    def parse(self) -> Parse:
        """Reports problems on the node; None when the parameters are unusable."""
        parse: Parse = self._module().parse
        return parse

    @property
    def fault(self) -> type[Fault]:
        """What it does once it fires."""
        fault: type[Fault] = getattr(self._module(), self.class_name)
        return fault

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
        FaultKind("latency", "latency", "LatencyFault"),
        FaultKind("abort", "abort", "AbortFault"),
        FaultKind("reset", "reset", "ResetFault"),
        FaultKind("timeout", "timeout", "TimeoutFault"),
        FaultKind("bandwidth", "bandwidth", "BandwidthFault"),
        FaultKind("slicer", "slicer", "SlicerFault"),
        FaultKind("limit_data", "limit_data", "LimitDataFault"),
        FaultKind("slow_close", "slow_close", "SlowCloseFault"),
        FaultKind("malformed", "malformed", "MalformedFault"),
        FaultKind("down", "down", "DownFault"),
        FaultKind("error", "error", "ErrorFault"),
    )
}
