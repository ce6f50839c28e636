"""What every runtime target offers the listeners."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from devamb.profile.schema import ServiceSpec, TargetSpec

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse


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


#: what a connection attempt can find (`unknown`: none was made), for status and the TUI
REACH_STATES = ("unknown", "reachable", "refused", "dns-failure", "timeout", "tls-failure",
                "unreachable")
#: states of a target that takes traffic (`ready`: built-ins, containers, pools with all in)
UP_STATES = frozenset(("ready", "reachable"))
#: states of a target that cannot take traffic now (connection attempts fail, or nothing runs)
DOWN_STATES = frozenset(REACH_STATES[2:]) | {"unavailable", "stopped", "failed"}
PROBE_TIMEOUT = 3.0  # seconds a connect probe waits
PROBE_EVERY = 5.0  # seconds at least between two probes of one address
_ERRNOS = re.compile(r"\[Errno (\d+)\]")


class Reachability:
    """What the last connection attempt to one host:port found.

    `unknown` until an attempt is made; then `reachable`, `refused`, `dns-failure`, `timeout`,
    `tls-failure` or `unreachable`, from the real exchanges' new connections (`observe`, called
    once per connect, never per request or byte) or from a connect probe (`probe`), made when
    status is read while the state is unknown or failing (so a target that came back shows it
    without traffic), and when an attempt ends without a verdict (cancelled by a deadline or
    the client leaving). Probes are at least PROBE_EVERY apart; nothing is probed before
    someone looks, so an idle engine opens no connections.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.state = "unknown"
        self.reason: str | None = None
        self.since: float | None = None  # wall clock of the last change of state
        self.checked: float | None = None  # wall clock of the last verdict
        self._probe: asyncio.Task[None] | None = None
        self._probed = -PROBE_EVERY  # monotonic time of the last probe
        self._closed = False  # the target closed: no more probes
        self.ssl: ssl.SSLContext | None = None  # for https: probes make the TLS handshake too
        #: where probes connect when `host` was resolved and pinned (a pool endpoint's DNS
        #: answer); `host` still names it in reasons and TLS
        self.pinned: tuple[str, int] | None = None

    def observe(self, error: BaseException | None) -> None:
        """The outcome of one connection attempt: None when it opened."""
        if isinstance(error, asyncio.CancelledError):
            self.probe()  # no verdict: a deadline or the client's leaving cut it short
            return
        state, reason = ("reachable", None) if error is None else classify(error, self.host)
        self.checked = time.time()
        if state != self.state or reason != self.reason:
            if state != self.state:
                self.since = self.checked
            self.state, self.reason = state, reason

    @property
    def failing(self) -> bool:
        return self.state not in ("unknown", "reachable")

    def probe(self) -> asyncio.Task[None] | None:
        """Open (and close) one TCP connection in the background, unless one ran just now;
        the probe running, if any."""
        now = time.monotonic()
        if self._probe is None and not self._closed and now - self._probed >= PROBE_EVERY:
            self._probed = now
            self._probe = asyncio.get_running_loop().create_task(self._connect())
        return self._probe

    async def _connect(self) -> None:
        writer = None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                host, port = self.pinned or (self.host, self.port)
                _, writer = await asyncio.open_connection(
                    host, port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError:
            self.observe(TimeoutError(f"no connection within {PROBE_TIMEOUT:g}s"))
        except OSError as exc:
            self.observe(exc)
        else:
            self.observe(None)
        finally:
            self._probe = None
            if writer is not None:
                writer.close()

    async def close(self) -> None:
        self._closed = True
        task, self._probe = self._probe, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def to_json(self) -> dict[str, Any]:
        return {
            "address": f"{self.host}:{self.port}", "state": self.state, "reason": self.reason,
            "since": self.since, "checked": self.checked,
        }


def classify(error: BaseException, host: str) -> tuple[str, str]:
    """(state, reason) of a failed connection attempt."""
    if isinstance(error, TimeoutError):
        return "timeout", str(error) or "no connection in time"
    if isinstance(error, socket.gaierror):
        return "dns-failure", f"cannot resolve {host!r}: {(error.strerror or '').lower()}"
    if isinstance(error, ssl.SSLError):
        return "tls-failure", f"TLS: {error.reason or error}"
    if isinstance(error, OSError):
        # asyncio joins the errors of several addresses (::1 and 127.0.0.1) into one message
        codes = {error.errno} if error.errno else {int(n) for n in _ERRNOS.findall(str(error))}
        if codes == {errno.ECONNREFUSED}:
            return "refused", "connection refused"
        if codes == {errno.ETIMEDOUT}:
            return "timeout", "connection timed out"
        if len(codes) == 1:
            return "unreachable", os_reason(codes.pop())
        return "unreachable", str(error) or type(error).__name__
    return "unreachable", str(error) or type(error).__name__


def os_reason(code: int) -> str:
    return os.strerror(code).lower()


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
        self, reader: asyncio.StreamReader, client: ClientStream, exchange: Exchange
    ) -> None:
        """Serve one client connection; return (or raise) to close it."""
        raise TargetUnavailable(f"target {self.name!r} does not serve TCP streams")


def _log_notice(level: str, message: str) -> None:
    logging.getLogger("devamb.targets").log(logging.getLevelName(level.upper()), "%s", message)
