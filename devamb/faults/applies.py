"""Where a fault kind can act: the refusals each kind declares, checked before a fault exists.

A fault that cannot act on a service's protocol or on one of its targets is refused when the
profile is validated (a problem at the fault's FILE:LINE:COL) and when it is added (a
ControlError), so that a fault listed as fired has always had its effect. The table in
docs/faults.md ("Where each fault applies") is this data, written out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Target kinds that answer HTTP themselves: no request bytes are ever sent to an upstream.
ANSWERING_TARGETS = ("echo", "mock")
UPSTREAM_BYTES = ("upstream", "both")  # directions that shape the client's bytes


@dataclass(frozen=True)
class Refusal:
    """One place a kind cannot act, and why; every part given must match for it to refuse."""

    why: str
    protocol: str | None = None  # "http" | "tcp" | "http2" | "grpc"; None: any
    targets: tuple[str, ...] = ()  # target kinds (url, echo, mock, shards, ...); (): any
    directions: tuple[str, ...] = ()  # the fault's direction; (): any
    when: Callable[[Any], bool] | None = None  # on the kind's params; None: always

    def refuses(self, protocol: str, target_kind: str | None, direction: str,
                params: Any) -> bool:
        if self.protocol is not None and protocol != self.protocol:
            return False
        if self.targets and target_kind not in self.targets:
            return False
        if self.directions and direction not in self.directions:
            return False
        return self.when is None or self.when(params)


def upstream_bytes_refusal(when: Callable[[Any], bool] | None = None) -> Refusal:
    """Shaping the client's bytes needs an upstream they go to: echo and mock answer alone."""
    return Refusal(
        why="direction upstream or both shapes the request on its way to the upstream, and "
            "an echo or mock target answers without one (use direction: downstream)",
        protocol="http", targets=ANSWERING_TARGETS, directions=UPSTREAM_BYTES, when=when,
    )


def answering_h2_refusals(when: Callable[[Any], bool] | None = None) -> tuple[Refusal, ...]:
    """An HTTP/2 call to a target that answers it itself (echo, mock) never passes through the
    call's relay, where response headers, DATA and the end are paced or cut
    (service/h2_faults.py): faults that act there are refused on such targets."""
    return tuple(
        Refusal(why="an echo or mock target answers HTTP/2 calls itself, and this fault acts "
                    "on a call's relayed headers, DATA or end", protocol=protocol,
                targets=ANSWERING_TARGETS, when=when)
        for protocol in ("http2", "grpc")
    )


def refusal(refusals: tuple[Refusal, ...], protocol: str, targets: Mapping[str, str] | None,
            direction: str, params: Any) -> str | None:
    """Why a fault cannot act on this service (its protocol, and `targets`: name -> kind), or
    None when it can act wherever the service routes."""
    for rule in refusals:
        if rule.targets:
            for name, kind in (targets or {}).items():
                if rule.refuses(protocol, kind, direction, params):
                    return f"it cannot act on target {name!r} ({kind}): {rule.why}"
        elif rule.refuses(protocol, None, direction, params):
            return rule.why
    return None
