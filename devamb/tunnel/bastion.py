"""One SSH bastion at run time: a single shared SSH connection, opened on first use, kept
alive, reconnected with backoff when it drops; every tunnelled connection is a direct-tcpip
channel on it (the remote name is resolved on the bastion's side, as `ssh -L` does)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devamb.tunnel.channel import ChannelTransport, TunnelDown
from devamb.tunnel.coalesce import coalesce_writes
from devamb.tunnel.hostkeys import HostKeyCheck
from devamb.tunnel.spec import BastionSpec
from devamb.tunnel.ssh import asyncssh as ssh

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger("devamb.tunnel")

BACKOFF_FIRST = 0.5  # s before the first retry after a network failure
BACKOFF_MAX = 30.0
FATAL_RETRY = 10.0  # s before a use may try again after an auth or host key failure
WINDOW = 4 * 1024 * 1024  # each channel's receive window: bulk transfers need a wide one


class Bastion:
    """A bastion's shared connection and what status shows of it."""

    def __init__(
        self, spec: BastionSpec, hops: list[BastionSpec],
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.hops = hops  # `jump` bastions, in order, resolved by the registry
        self._notify = notify
        self.state = "idle"  # idle | connecting | up | down
        self.reason: str | None = None  # why it is down
        self.last_error: str | None = None
        self.host_key: str | None = None  # the fingerprint seen at the last connect
        self.cipher: str | None = None  # negotiated at the last connect (for the benchmark)
        self.rtt_ms: float | None = None  # channel-open round trip (smoothed)
        self.channels = 0
        self.channels_total = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.connects = 0  # successful connections
        self.attempts = 0  # connection attempts (auth or host key failures never loop)
        self.dropped = False  # the connection dropped under open channels
        self._conn: asyncssh.SSHClientConnection | None = None
        self._hop_conns: list[asyncssh.SSHClientConnection] = []
        self._check: HostKeyCheck | None = None  # the last hop's: it hears why the connection ends
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._fatal_until = 0.0
        self._closed = False

    @property
    def name(self) -> str:
        return self.spec.name

    # -- what the proxy calls ----------------------------------------------------------------

    def dialer(self, timeout: float) -> Callable[..., Any]:
        """A `loop.create_connection` look-alike through this bastion, waiting at most
        `timeout` for the SSH connection (the service's connect timeout)."""

        async def dial(
            protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int,
            *, ssl: Any = None, server_hostname: str | None = None, **_: Any,
        ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
            # a little inside the caller's own connect deadline, so that the tunnel's
            # reason (tunnel-down: unreachable, auth failed, ...) is what the client sees
            wait = timeout * 0.9
            return await self.open(protocol_factory, host, port, wait, ssl, server_hostname)

        return dial

    async def open(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int,
        timeout: float, ssl: Any = None, server_hostname: str | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            conn = await self.connection(max(0.0, deadline - asyncio.get_running_loop().time()))
            protocol = protocol_factory()
            holder: asyncio.BaseProtocol = asyncio.Protocol() if ssl is not None else protocol
            transport = ChannelTransport(self, holder, (host, port))
            started = time.monotonic()
            try:
                await conn.create_connection(
                    lambda t=transport: t,  # type: ignore[misc]
                    host, port, window=WINDOW,
                )
                break
            except ssh().ChannelOpenError as exc:
                if self._conn is conn and not conn.is_closed():
                    raise ConnectionRefusedError(
                        111, f"{exc.reason} (from {host}:{port} through bastion {self.name})"
                    ) from None
                why = self.reason or exc.reason
            except (ssh().Error, OSError) as exc:
                if self._conn is conn and not conn.is_closed():
                    raise TunnelDown(f"bastion {self.name}: {exc}") from None
                why = self.reason or str(exc)
            # the connection went while the channel was opening (a frozen bastion is only
            # noticed by keepalive): a new exchange waits for the reconnect, as it would have
            # had it come a moment later
            if self._closed or asyncio.get_running_loop().time() >= deadline:
                raise TunnelDown(f"bastion {self.name}: {why}")
        rtt = (time.monotonic() - started) * 1000
        self.rtt_ms = rtt if self.rtt_ms is None else 0.8 * self.rtt_ms + 0.2 * rtt
        if ssl is None:
            return transport, protocol
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                transport, protocol, ssl, server_hostname=server_hostname or host,
            )
        except BaseException:
            transport.abort()
            raise
        assert secure is not None
        protocol.connection_made(secure)
        return secure, protocol

    async def connection(self, timeout: float) -> asyncssh.SSHClientConnection:
        """The SSH connection, opening or awaiting a reconnect for up to `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._closed:
                raise TunnelDown(f"bastion {self.name} is closed")
            if self._task is None or self._task.done():
                if time.monotonic() < self._fatal_until:
                    raise TunnelDown(f"bastion {self.name}: {self.reason}")
                self._task = asyncio.get_running_loop().create_task(self._run())
            self._changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                why = self.reason or f"no SSH connection within {timeout:g}s"
                raise TunnelDown(f"bastion {self.name}: {why}")
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                continue
            if self._conn is None and self._task is not None and self._task.done():
                raise TunnelDown(f"bastion {self.name}: {self.reason}")

    # -- the connection's life ---------------------------------------------------------------

    async def _run(self) -> None:
        """Connect; when up, wait for the drop and reconnect with backoff. Ends for good on
        an auth or host key failure (never a tight loop: a later use may try again after
        FATAL_RETRY), or when closed."""
        backoff = BACKOFF_FIRST
        while not self._closed:
            self._set("connecting")
            self.attempts += 1
            try:
                conn = await self._connect()
            except (ssh().PermissionDenied, HostKeyRefused) as exc:
                self._failed(_reason(exc, self.spec), fatal=True)
                return
            except (OSError, ssh().Error, TimeoutError) as exc:
                self._failed(_reason(exc, self.spec), fatal=False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except Exception as exc:  # a key that cannot be read (bad passphrase), ...
                self._failed(_reason(exc, self.spec), fatal=True)
                return
            backoff = BACKOFF_FIRST
            self._conn = conn
            self.cipher = conn.get_extra_info("send_cipher")
            key = conn.get_server_host_key()
            self.host_key = key.get_fingerprint("sha256") if key is not None else self.host_key
            self.connects += 1
            self.reason = None
            self.dropped = False
            self._set("up")
            await conn.wait_closed()
            self._conn = None
            if self._closed:
                return
            self.dropped = True
            self._close_hops()
            lost = self._check.lost if self._check is not None else None
            self._failed(f"the SSH connection dropped{f': {lost}' if lost else ''}", fatal=False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)  # a failed retry waits longer

    async def _connect(self) -> asyncssh.SSHClientConnection:
        tunnel: asyncssh.SSHClientConnection | None = None
        self._hop_conns = []
        for hop in [*self.hops, self.spec]:
            check = HostKeyCheck(hop)
            options = _options(hop, check)
            try:
                async with asyncio.timeout(max(hop.keepalive, 10.0) * 2):
                    conn = await ssh().connect(
                        hop.host, tunnel=tunnel, options=options,
                    )
            except BaseException as exc:
                self._close_hops()
                refused = check.refusal()
                if refused is not None:
                    raise HostKeyRefused(refused) from exc
                raise
            self._check = check
            if check.accepted is not None:
                self._notice("warning", check.accepted)
            coalesce_writes(conn)
            if hop is not self.spec:
                self._hop_conns.append(conn)
            tunnel = conn
        assert tunnel is not None
        return tunnel

    def _close_hops(self) -> None:
        for conn in self._hop_conns:
            conn.close()
        self._hop_conns = []

    def _failed(self, reason: str, *, fatal: bool) -> None:
        repeated = reason == self.last_error and self.state in ("connecting", "down")
        self.reason = reason
        self.last_error = reason
        if fatal:
            self._fatal_until = time.monotonic() + FATAL_RETRY
        self._set("down")
        if not repeated:  # retries that fail the same way are not told again
            self._notice("error" if fatal else "warning", f"bastion {self.name}: {reason}")

    def _set(self, state: str) -> None:
        self.state = state
        self._changed.set()

    def _notice(self, level: str, message: str) -> None:
        log.log(logging.getLevelName(level.upper()), "%s", message)
        if self._notify is not None:
            self._notify(level, message)

    def channel_opened(self) -> None:
        self.channels += 1
        self.channels_total += 1

    def channel_closed(self) -> None:
        self.channels -= 1

    async def reset(self, spec: BastionSpec, hops: list[BastionSpec]) -> None:
        """New settings (a profile reload): drop the connection; the next use reconnects."""
        await self.close()
        self.spec, self.hops = spec, hops
        self._closed = False
        self._fatal_until = 0.0
        self.state, self.reason = "idle", None

    async def close(self) -> None:
        self._closed = True
        self._changed.set()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._close_hops()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):  # closing: its outcome no longer matters
                await self._task

    def status(self) -> dict[str, Any]:
        """What `devamb status` shows (secrets are masked by the engine)."""
        return {
            "name": self.name,
            "address": self.spec.describe(),
            "jump": list(self.spec.jump),
            "state": self.state,
            "reason": self.reason,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "channels": self.channels,
            "channels_total": self.channels_total,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "connects": self.connects,
            "attempts": self.attempts,
            "host_key": self.host_key,
            "cipher": self.cipher,
            "last_error": self.last_error,
        }


class HostKeyRefused(Exception):
    """The bastion's host key is unknown (and accept_new is off) or does not match."""


def _options(spec: BastionSpec, check: HostKeyCheck) -> asyncssh.SSHClientConnectionOptions:
    kwargs: dict[str, Any] = {
        "known_hosts": check.known_hosts_argument(),
        "client_factory": check.client_factory,
        "keepalive_interval": spec.keepalive or None,
        "keepalive_count_max": 3,
        "connect_timeout": 15.0,
    }
    if spec.port is not None:
        kwargs["port"] = spec.port
    if spec.user is not None:
        kwargs["username"] = spec.user
    if spec.identity_file is not None:
        kwargs["client_keys"] = [spec.identity_file]
    if spec.passphrase is not None:
        kwargs["passphrase"] = spec.passphrase
    if spec.password is not None:
        kwargs["password"] = spec.password
    return ssh().SSHClientConnectionOptions(**kwargs)


def _reason(exc: BaseException, spec: BastionSpec) -> str:
    """A short reason for status: auth failed, host key refused, unreachable."""
    if isinstance(exc, HostKeyRefused):
        return str(exc)
    if isinstance(exc, ssh().PermissionDenied):
        return f"auth failed as {spec.user or 'the default user'}: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"unreachable: no SSH answer from {spec.host}"
    if isinstance(exc, OSError):
        return f"unreachable: {exc.strerror or exc}"
    if isinstance(exc, ssh().Error):
        return f"ssh error: {exc.reason or exc}"
    if isinstance(exc, ssh().KeyImportError):
        return f"cannot use the identity file: {exc}"
    return str(exc) or type(exc).__name__
