"""HTTP/2 to an upstream, over cleartext with prior knowledge (h2c) or over TLS with ALPN `h2`:
one connection per upstream, multiplexed across streams, opened again when it dies.

Over TLS the upstream must select `h2` in ALPN; one that does not (an HTTP/1.1-only server), or
whose certificate fails verification, is refused with an UpstreamDown that says which."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

import h2.events

from devamb.proxy.dial import Dial, dial_with
from devamb.proxy.h2conn import PROTOCOL_ERROR, H2Endpoint, H2Headers, H2Stream
from devamb.proxy.upstream import tls_context

SETTINGS_FRAME = 0x4

EARLY_STREAMS = 100


class UpstreamDown(Exception):
    """No HTTP/2 connection to the upstream could be made."""


class H2UpstreamConnection(H2Endpoint):
    def __init__(self) -> None:
        super().__init__(client_side=True, trusted=True)
        # streams waiting for a slot, first come first served: a closing stream wakes one
        # (waking them all would cost each of them a count of the open streams)
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._settings_seen = False  # until the upstream's SETTINGS arrive, 100 streams at most
        self._heard = False  # the upstream sent something (its preface, if it speaks HTTP/2)

    def data_received(self, data: bytes) -> None:
        if not self._heard and data:
            self._heard = True
            if len(data) >= 4 and data[3] != SETTINGS_FRAME:  # a server's preface is SETTINGS
                said = "HTTP/1.x" if data.startswith(b"HTTP/") else repr(data[:16])
                self.protocol_error(f"it answered {said}")
                if self.transport is not None:
                    self.transport.abort()
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._heard:
            self.protocol_error("it closed the connection without a word")
        super().connection_lost(exc)
        self._wake(every=True)

    def protocol_error(self, reason: str) -> None:
        """The upstream's bytes are not HTTP/2 (an HTTP/1.1 server answering h2c's preface
        with a 400, say): the streams in flight fail with that reason, not a bare "lost"."""
        for stream in list(self.streams.values()):
            self._gone(stream, PROTOCOL_ERROR, f"the upstream does not speak HTTP/2 ({reason})",
                       lost=True)

    @property
    def max_streams(self) -> int:
        """How many streams the upstream takes at once (RFC 9113 recommends at least 100: a
        connection opens no more until the upstream says its limit)."""
        if not self._settings_seen:
            return EARLY_STREAMS
        return int(self.conn.remote_settings.max_concurrent_streams)

    @property
    def usable(self) -> bool:
        return not self.goaway and not self.lost

    async def open(self, headers: H2Headers, end: bool, more: bool = False) -> H2Stream:
        """A new stream with its request headers sent; waits while the upstream's limit of
        concurrent streams is reached. `more`: the caller sends more on the stream (or
        flushes) before it yields to the loop (H2Stream.send_headers)."""
        conn = self.conn
        # (h2's count walks every stream: asked only near the limit)
        while len(self.streams) + 8 >= self.max_streams and (
                conn.open_outbound_streams >= self.max_streams):
            if not self.usable:
                raise UpstreamDown("the upstream connection closed")
            slot = asyncio.get_running_loop().create_future()
            self._waiting.append(slot)
            try:
                await slot
            except asyncio.CancelledError:
                if slot.done() and not slot.cancelled():
                    self._wake()  # it was given a slot it will not use: the next one may
                raise
        if not self.usable:
            raise UpstreamDown("the upstream connection closed")
        stream = H2Stream(self, conn.get_next_available_stream_id())
        self.streams[stream.id] = stream
        stream.send_headers(headers, end, more)
        return stream

    def forget(self, stream: H2Stream) -> None:
        super().forget(stream)
        self._wake()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        super()._on_settings(event)
        self._settings_seen = True
        self._wake(every=True)  # the limit may have grown

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        super()._on_goaway(event)
        self._wake(every=True)  # the connection is over

    def _wake(self, every: bool = False) -> None:
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                if not every:
                    return


class H2Upstream:
    """The connection to one upstream host:port, shared by the streams sent to it; over TLS
    when `tls` is given (a context offering ALPN `h2`, see `h2_tls`)."""

    def __init__(
        self, host: str, port: int, connect_timeout: float,
        tls: ssl.SSLContext | None = None, server_hostname: str | None = None,
        dial: Dial | None = None,
    ) -> None:
        self.host = host
        self.dial = dial  # None: loop.create_connection (see devamb.proxy.dial)
        self.port = port
        self.connect_timeout = connect_timeout
        self.tls = tls
        self.server_hostname = server_hostname if tls is not None else None
        self._connection: H2UpstreamConnection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> H2UpstreamConnection:
        current = self._connection
        if current is not None and current.usable:
            return current
        async with self._lock:
            current = self._connection
            if current is not None and current.usable:
                return current
            protocol = await self._connect()
            self._connection = protocol
            return protocol

    async def _connect(self) -> H2UpstreamConnection:
        where = f"{self.host}:{self.port}"
        try:
            transport, protocol = await asyncio.wait_for(
                dial_with(self.dial)(
                    H2UpstreamConnection, self.host, self.port, ssl=self.tls,
                    server_hostname=self.server_hostname or (self.host if self.tls else None),
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamDown(
                f"connecting to {where} timed out after {self.connect_timeout:g}s"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamDown(
                f"TLS to {where}: the upstream's certificate failed verification "
                f"({exc.verify_message or exc.reason or exc})"
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamDown(
                f"TLS to {where}: the handshake failed ({exc.reason or exc})"
            ) from None
        except OSError as exc:
            raise UpstreamDown(f"cannot connect to {where}: {exc.strerror or exc}") from None
        if self.tls is not None:
            tls = transport.get_extra_info("ssl_object")
            chosen = tls.selected_alpn_protocol() if tls is not None else None
            if chosen != "h2":
                transport.abort()
                raise UpstreamDown(
                    f"TLS to {where}: the upstream did not select h2 in ALPN "
                    f"({'it chose ' + repr(chosen) if chosen else 'it chose no protocol'}): "
                    "it does not speak HTTP/2 over TLS"
                )
        return protocol

    async def open(self, headers: H2Headers, end: bool, more: bool = False) -> H2Stream:
        connection = self._connection  # (`connection`'s first test, without its coroutine)
        if connection is None or not connection.usable:
            connection = await self.connection()
        return await connection.open(headers, end, more)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def h2_tls(cafile: str | None, verify: bool) -> ssl.SSLContext:
    """A target's client TLS context for HTTP/2 upstreams: `tls_context`'s, offering ALPN h2.
    Made once per target (loading the CA store is slow)."""
    context = tls_context(cafile, verify)
    context.set_alpn_protocols(["h2"])
    return context
