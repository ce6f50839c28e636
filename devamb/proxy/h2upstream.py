"""HTTP/2 to an upstream over cleartext with prior knowledge (h2c): one connection per
upstream, multiplexed across streams, opened again when it dies."""

from __future__ import annotations

import asyncio
from collections import deque

import h2.events

from devamb.proxy.h2conn import H2Endpoint, H2Headers, H2Stream

EARLY_STREAMS = 100


class UpstreamDown(Exception):
    """No HTTP/2 connection to the upstream could be made."""


class H2UpstreamConnection(H2Endpoint):
    def __init__(self) -> None:
        super().__init__(client_side=True)
        # streams waiting for a slot, first come first served: a closing stream wakes one
        # (waking them all would cost each of them a count of the open streams)
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._settings_seen = False  # until the upstream's SETTINGS arrive, 100 streams at most

    @property
    def max_streams(self) -> int:
        """How many streams the upstream takes at once (RFC 9113 recommends at least 100: a
        connection opens no more until the upstream says its limit)."""
        if not self._settings_seen:
            return EARLY_STREAMS
        return int(self.conn.remote_settings.max_concurrent_streams)

    @property
    def usable(self) -> bool:
        return not self.goaway and not self.closed.is_set()

    async def open(self, headers: H2Headers, end: bool) -> H2Stream:
        """A new stream with its request headers sent; waits while the upstream's limit of
        concurrent streams is reached."""
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
        stream.send_headers(headers, end=end)
        return stream

    def forget(self, stream: H2Stream) -> None:
        super().forget(stream)
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake(every=True)

    def _dispatch(self, event: h2.events.Event) -> None:
        super()._dispatch(event)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_seen = True
        if isinstance(event, h2.events.RemoteSettingsChanged | h2.events.ConnectionTerminated):
            self._wake(every=True)  # the limit may have grown, or the connection is over

    def _wake(self, every: bool = False) -> None:
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                if not every:
                    return


class H2Upstream:
    """The connection to one upstream host:port, shared by the streams sent to it."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
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
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(H2UpstreamConnection, self.host, self.port),
                    self.connect_timeout,
                )
            except TimeoutError:
                raise UpstreamDown(
                    f"connecting to {self.host}:{self.port} timed out after "
                    f"{self.connect_timeout:g}s"
                ) from None
            except OSError as exc:
                raise UpstreamDown(
                    f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
                ) from None
            self._connection = protocol
            return protocol

    async def open(self, headers: H2Headers, end: bool) -> H2Stream:
        connection = await self.connection()
        return await connection.open(headers, end)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
