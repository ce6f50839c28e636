"""Protocol-aware TCP services: a follower reads a relayed connection's bytes beside the relay.

`protocol: postgres` and `protocol: redis` are TCP relays (service/tcp.py) whose connections
each get a follower (wire/follower.py) that reports commands as exchanges and, when
command-level faults are armed, tells the relay what to do at each command boundary.
Targets and connection-level faults see such a service as `tcp` (`transport`).
"""

from __future__ import annotations

WIRE_PROTOCOLS = ("postgres", "redis")  # services whose TCP connections a follower reads
TCP_PROTOCOLS = ("tcp", *WIRE_PROTOCOLS)


def transport(protocol: str) -> str:
    """What targets and connection-level faults see: `tcp` for a protocol-aware relay."""
    return "tcp" if protocol in WIRE_PROTOCOLS else protocol


def is_wire(protocol: str) -> bool:
    return protocol in WIRE_PROTOCOLS
