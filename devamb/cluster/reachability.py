"""Whether one host:port answers: what the last connection attempt (or a probe) found."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import ssl
import time
from typing import Any

from devamb.proxy.dial import Dial

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
        self.dial: Dial | None = None  # probes go where exchanges go: through a bastion

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
                if self.dial is not None:  # a tunnelled target: a channel, then closed
                    transport, _ = await self.dial(
                        asyncio.Protocol, host, port, ssl=self.ssl,
                        server_hostname=self.host if self.ssl is not None else None,
                    )
                    transport.close()
                else:
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
