"""What every runtime target offers the listeners."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from devamb.cluster.reachability import Reachability
from devamb.profile.schema import ServiceSpec, TargetSpec

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse


class ClientReader(Protocol):
    """The reading half of a client's TCP connection, for targets that terminate TCP (an
    `asyncio.StreamReader`, or one that passes the bytes through the connection's faults)."""

    async def read(self, n: int = -1) -> bytes: ...


class ClientStream(Protocol):
    """The writing half of a client's TCP connection, for targets that terminate TCP."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class TargetUnavailable(Exception):
    """The target cannot take an exchange now; `reason` is shown to the client and in status."""

    def __init__(self, reason: str, status: int = 503) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Target:
    """A named place a service routes to: HTTP services call `handle_http`, TCP `tcp_address`."""

    #: set by kinds that connect to one address they do not run (URL targets): their state
    #: is what the last connection attempt found
    reach: Reachability | None = None

    def __init__(self, spec: TargetSpec, service: ServiceSpec) -> None:
        self.spec = spec
        self.service = service
        self.notify: Callable[[str, str], None] = _log_notice  # the engine sets its own

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> str:
        """A short word for status and the TUI: ready, unavailable, starting, reachable, ..."""
        return "ready" if self.reach is None else self.reach.state

    def details(self) -> dict[str, Any]:
        """Kind-specific facts for status (container id, resolved address, ...); JSON-able."""
        return {} if self.reach is None else {"reach": self.reach.to_json()}

    def refresh(self) -> asyncio.Task[None] | None:
        """Status is being read: probe an address that is unknown or failing (rate-limited);
        the probe to wait for, when the state is still unknown."""
        reach = self.reach
        if reach is None or reach.state == "reachable":
            return None
        probe = reach.probe()
        return probe if reach.state == "unknown" else None

    async def activate(self) -> None:
        """Called before the service switches to this target (e.g. start a container)."""

    #: the engine's replay marker, for targets that send requests back through their listener
    replay_token: str | None = None

    def tcp_outcome(
        self, address: tuple[str, int], failure: str | None, error: BaseException | None = None
    ) -> None:
        """After connecting to what `tcp_address` gave: None when connected, else why not."""
        if self.reach is None or address != (self.reach.host, self.reach.port):
            return
        if failure is not None and (error is None or isinstance(error, TimeoutError)):
            error = TimeoutError(failure) if isinstance(error, TimeoutError) else OSError(failure)
        self.reach.observe(None if failure is None else error)

    def tcp_closed(self, address: tuple[str, int]) -> None:
        """A relayed connection to `address` ended."""

    def bind(self, targets: dict[str, Target]) -> None:
        """Called once the service's targets are built: kinds that route to other targets of
        the same service (split, mirror, a mock's proxy fallback) keep the dict."""

    async def start(self) -> None:
        """Acquire what the target needs (sessions, helper servers)."""

    async def close(self) -> None:
        """Release it; exchanges still in flight may finish first."""

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        raise TargetUnavailable(f"target {self.name!r} does not serve HTTP")

    async def tcp_address(self) -> tuple[str, int]:
        raise TargetUnavailable(f"target {self.name!r} does not serve TCP")

    #: True for targets that speak the client's protocol themselves (a RESP sharding proxy):
    #: the TCP listener then hands them the client's stream instead of relaying bytes.
    terminates_tcp: ClassVar[bool] = False

    async def serve_tcp(
        self, reader: ClientReader, client: ClientStream, exchange: Exchange
    ) -> None:
        """Serve one client connection; return (or raise) to close it. The service applies
        the connection's faults to both streams (latency, bandwidth, cuts, slow close)."""
        raise TargetUnavailable(f"target {self.name!r} does not serve TCP streams")


def _log_notice(level: str, message: str) -> None:
    logging.getLogger("devamb.targets").log(logging.getLevelName(level.upper()), "%s", message)
