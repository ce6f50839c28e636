"""The HTTP/2 front end: a listener speaking HTTP/2 with prior knowledge (h2c), or over TLS
with ALPN h2; an HTTP/1.1 listener hands it the connections that turn out HTTP/2 (sniff.py).

One connection is one H2Endpoint (server side); each stream the client opens is handed to
`on_stream` in a task of its own, so that streams are independent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from ssl import SSLContext

from devamb.proxy import h2limits
from devamb.proxy.h2conn import H2Endpoint, H2Stream
from devamb.proxy.h2limits import H2Limits
from devamb.proxy.listen import create_server

OnStream = Callable[[H2Stream, str | None], Coroutine[None, None, None]]  # (stream, client address)
OnError = Callable[[str | None, str], None]  # (client address, what it did and what it got)


class H2FrontConnection(H2Endpoint):
    def __init__(self, server: H2FrontServer) -> None:
        super().__init__(client_side=False, limits=server.limits)
        self.server = server
        self.remote: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = str(peer[0])
            self.remote = f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
        self.server.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.connections.discard(self)

    def new_stream(self, stream: H2Stream) -> None:
        self.server.spawn(stream, self.remote, self._loop)

    def protocol_error(self, reason: str) -> None:
        self.server.on_error(self.remote, reason)


class H2FrontServer:
    def __init__(
        self, on_stream: OnStream, on_error: OnError, ssl: SSLContext | None = None,
        limits: H2Limits | None = None,
    ) -> None:
        self.limits = limits or h2limits.DEFAULT  # what a client may do: see h2limits
        self.on_stream = on_stream
        self.ssl = ssl  # the listener terminates TLS (ALPN h2)
        self.on_error = on_error
        self.connections: set[H2FrontConnection] = set()
        self._tasks: dict[H2Stream, asyncio.Task[None]] = {}  # the streams' (spawn)
        self._server: asyncio.Server | None = None
        self._hurried = asyncio.Event()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await create_server(
            lambda: H2FrontConnection(self), host, port, ssl=self.ssl
        )
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    def spawn(self, stream: H2Stream, remote: str | None,
              loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`on_stream` for `stream` in a task of its own. (`loop`: the caller's, when it has
        it: asyncio.get_running_loop costs a getpid system call.)"""
        self._tasks[stream] = (loop or asyncio.get_running_loop()).create_task(
            self._serve(stream, remote))

    async def _serve(self, stream: H2Stream, remote: str | None) -> None:
        # the task leaves the table as it ends, not by a done callback: that would be
        # scheduled for the next turn of the loop, one more turn (and epoll call) per call
        try:
            await self.on_stream(stream, remote)
        finally:
            self._tasks.pop(stream, None)

    def _live(self) -> set[asyncio.Task[None]]:
        """The streams' tasks still running (one cancelled before it started is done
        without having left the table)."""
        for stream, task in list(self._tasks.items()):
            if task.done():
                del self._tasks[stream]
        return set(self._tasks.values())

    def hurry(self) -> None:
        """End the drain of `stop` now: the streams still in flight are cut."""
        self._hurried.set()

    async def _drain(self, grace: float) -> set[asyncio.Task[None]]:
        """Wait for the streams in flight, up to `grace` s or a `hurry`; those left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hurried = loop.create_task(self._hurried.wait())
        try:
            while (live := self._live()) and not self._hurried.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                await asyncio.wait({*live, hurried}, timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurried.cancel()
        return self._live()

    async def stop(self, grace: float) -> int:
        """Stop accepting, let streams in flight finish for up to `grace` s; how many were cut."""
        if self._server is not None:
            self._server.close()
        cut = 0
        if self._live():
            pending = await self._drain(grace)
            cut = len(pending)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        return cut
