"""What every runtime target offers the listeners."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from devamb.cluster.reachability import Reachability
from devamb.control.protocol import ControlError
from devamb.profile.schema import TargetSpec

if TYPE_CHECKING:
    import ssl

    from devamb.inspect.exchange import Exchange
    from devamb.proxy.dial import Dial
    from devamb.proxy.h2conn import H2Headers, H2Stream
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse
    from devamb.tunnel.registry import Tunnels


# The header on a split's mirrored copy (here, so HTTP services need not import splits).
MIRROR_OF = "X-Devamb-Mirror-Of"


class ClientReader(Protocol):
    """The reading half of a client's TCP connection, for targets that terminate TCP (an
    `asyncio.StreamReader`, or one that passes the bytes through the connection's faults)."""

    async def read(self, n: int = -1) -> bytes: ...


@runtime_checkable
class HandingReader(ClientReader, Protocol):
    """A `ClientReader` that can hand each read straight to the target, in the socket's own
    callback, while the target's task waits in `read` (no wake-up and no task switch per
    read): `take(data)` serves it, or returns False to have it read as usual; `end()` makes
    the next `read` return b"" (the target reads no more)."""

    take: Callable[[bytes], bool] | None

    def end(self) -> None: ...


class ClientStream(Protocol):
    """The writing half of a client's TCP connection, for targets that terminate TCP."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def writable(self) -> bool:
        """True when `drain` would not wait (nor raise)."""
        ...

    def close(self) -> None: ...


class TargetUnavailable(Exception):
    """The target cannot take an exchange now; `reason` is shown to the client and in status."""

    def __init__(self, reason: str, status: int = 503) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _log_notice(level: str, message: str) -> None:
    logging.getLogger("devamb.targets").log(logging.getLevelName(level.upper()), "%s", message)


@dataclass(frozen=True)
class H2Destination:
    """Where one HTTP/2 call goes: an upstream speaking HTTP/2 (h2c, or h2 over TLS with ALPN).

    Calls to equal destinations share one upstream connection (`key`): the same address, name
    and TLS context (a target's own, so that targets with other TLS settings never share)."""

    host: str
    port: int
    authority: str  # the :authority the upstream gets (unless the service keeps the client's)
    tls: ssl.SSLContext | None = None  # None: cleartext h2c
    server_hostname: str | None = None  # SNI and certificate check name, with `tls`
    headers: Mapping[str, str] = field(default_factory=dict)  # the target's own, replacing
    # the client's (credentials, ...)
    via: str | None = None  # the bastion it goes through
    dial: Dial | None = field(default=None, compare=False)  # and how (devamb.proxy.dial)

    @functools.cached_property  # (read twice per call; a target keeps its destination)
    def key(self) -> tuple[str, int, int, str | None, str | None]:
        return (self.host, self.port, 0 if self.tls is None else id(self.tls),
                self.server_hostname, self.via)


@dataclass(frozen=True)
class TargetContext:
    """What a target needs of its service and of the engine, handed over at construction.

    `siblings` are the service's targets (this one included), by name: a read-only view of
    the mapping the engine fills while it builds them, complete before any target starts, so
    that kinds routing to other targets (split, mirror, a mock's proxy fallback) look them up
    there, never earlier than `start`.
    """

    service: str  # the service's name
    protocol: str  # the service's protocol: "http" | "tcp" | "http2" | "grpc"
    timeout: float  # s: request sent -> response headers, body stall (HTTP) / connect (TCP)
    connect_timeout: float | None = None  # s to establish an upstream connection, if set
    keep_host: bool = False  # forward the client's Host header
    target_header: bool = True  # the listener honours X-Devamb-Target
    notify: Callable[[str, str], None] = _log_notice  # (level, message) the developer sees
    replay_token: str | None = None  # the engine's replay marker (mirrored copies carry it)
    siblings: Mapping[str, Target] = field(default_factory=dict, repr=False, compare=False)
    tunnels: Tunnels | None = field(default=None, repr=False, compare=False)  # the bastions

    def dial_via(self, via: str | None) -> Dial | None:
        """How a target with `via: BASTION` connects (None: directly)."""
        if via is None or self.tunnels is None:
            return None
        bastion = self.tunnels.get(via)
        if bastion is None:
            raise TargetUnavailable(f"bastion {via!r} is not running")
        return bastion.dialer(self.connect_timeout or self.timeout)


class Target:
    """A named place a service routes to: HTTP services call `handle_http`, TCP `tcp_address`,
    HTTP/2 services `h2_destination` (or `serve_h2` for kinds that answer calls themselves)."""

    #: set by kinds that connect to one address they do not run (URL targets): their state
    #: is what the last connection attempt found
    reach: Reachability | None = None

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        self.spec = spec
        self.context = context

    @property
    def name(self) -> str:
        return self.spec.name

    def notify(self, level: str, message: str) -> None:
        """Tell the developer (log and TUI notification) through the engine."""
        self.context.notify(level, message)

    @property
    def replay_token(self) -> str | None:
        """The engine's replay marker, for targets that send requests back through their
        listener."""
        return self.context.replay_token

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

    def injected_headers(self) -> Mapping[str, str]:
        """Headers the target adds to every request it forwards (credentials, ...): a curl
        command made from a recorded request leaves them out, the target adds them again."""
        return {}

    async def logs(self, tail: int = 200, follow: bool = True) -> AsyncIterator[str]:
        """Log lines of what the target runs (a docker target: its containers), the last
        `tail`, then new ones while `follow`; a kind that runs nothing has none."""
        raise ControlError(f"target {self.name!r} is not a docker target: it has no logs")
        yield  # an async generator, as the kinds' own

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

    async def start(self) -> None:
        """Acquire what the target needs (sessions, helper servers)."""

    async def close(self) -> None:
        """Release it; exchanges still in flight may finish first."""

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        raise TargetUnavailable(f"target {self.name!r} does not serve HTTP")

    async def tcp_address(self) -> tuple[str, int]:
        raise TargetUnavailable(f"target {self.name!r} does not serve TCP")

    def dial(self) -> Dial | None:
        """How `tcp_address` is connected to: None directly, or through a bastion."""
        return None

    #: True for targets that speak the client's protocol themselves (a RESP sharding proxy):
    #: the TCP listener then hands them the client's stream instead of relaying bytes.
    terminates_tcp: ClassVar[bool] = False

    async def serve_tcp(
        self, reader: ClientReader, client: ClientStream, exchange: Exchange
    ) -> None:
        """Serve one client connection; return (or raise) to close it. The service applies
        the connection's faults to both streams (latency, bandwidth, cuts, slow close)."""
        raise TargetUnavailable(f"target {self.name!r} does not serve TCP streams")

    #: True for kinds that answer HTTP/2 calls themselves (echo, mock): the HTTP/2 listener
    #: hands them the call's stream (`serve_h2`) instead of relaying it to `h2_destination`.
    answers_h2: ClassVar[bool] = False

    def h2_target(self, headers: H2Headers) -> Target:
        """The target that takes the HTTP/2 call with request `headers`: itself, or for kinds
        that route to their siblings (a split), the one picked for this call."""
        return self

    async def h2_destination(self, headers: H2Headers) -> H2Destination:
        """Where the HTTP/2 call with request `headers` goes; picked per call, so that kinds
        with several places (pools, splits) choose each time."""
        raise TargetUnavailable(f"target {self.name!r} does not serve HTTP/2")

    async def serve_h2(self, stream: H2Stream, headers: H2Headers, exchange: Exchange) -> None:
        """Answer one HTTP/2 call (`answers_h2` kinds): read the request from `stream` (its
        request `headers` were already taken), send the response on it."""
        raise TargetUnavailable(f"target {self.name!r} does not answer HTTP/2 calls")
