"""HTTP/2 to an upstream over cleartext with prior knowledge (h2c): one connection per
upstream, multiplexed across streams, opened again when it dies."""

from __future__ import annotations

import asyncio

from devamb.proxy.h2conn import H2Endpoint, H2Headers, H2Stream


class UpstreamDown(Exception):
    """No HTTP/2 connection to the upstream could be made."""


class H2UpstreamConnection(H2Endpoint):
    def __init__(self) -> None:
        super().__init__(client_side=True)
        self._slot = asyncio.Event()  # set when a stream closes: a new one may fit

    @property
    def usable(self) -> bool:
        return not self.goaway and not self.closed.is_set()

    async def open(self, headers: H2Headers, end: bool) -> H2Stream:
        """A new stream with its request headers sent; waits while the upstream's limit of
        concurrent streams is reached."""
        conn = self.conn
        while conn.open_outbound_streams >= conn.remote_settings.max_concurrent_streams:
            if not self.usable:
                raise UpstreamDown("the upstream connection closed")
            self._slot.clear()
            await self._slot.wait()
        if not self.usable:
            raise UpstreamDown("the upstream connection closed")
        stream = H2Stream(self, conn.get_next_available_stream_id())
        self.streams[stream.id] = stream
        stream.send_headers(headers, end=end)
        return stream

    def forget(self, stream: H2Stream) -> None:
        super().forget(stream)
        self._slot.set()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._slot.set()


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
