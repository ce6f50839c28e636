"""The TCP relay: asyncio Protocols with backpressure and half-close passed through."""

from __future__ import annotations

import asyncio

from devamb.inspect.exchange import Exchange
from devamb.inspect.recorder import Recorder
from devamb.proxy.listen import bind_failure
from devamb.service import Service
from devamb.targets.base import TargetUnavailable


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; bytes it receives go to its peer's transport."""

    __slots__ = ("early", "eof", "inbound", "peer", "relay", "transport")

    def __init__(self, relay: _Relay, inbound: bool) -> None:
        self.relay = relay
        self.inbound = inbound  # True for the client's side
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.eof = False
        self.early: list[bytes] = []  # bytes that arrived before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.inbound:
            transport.pause_reading()  # nothing is read until the upstream is connected
            self.relay.begin(self)

    def data_received(self, data: bytes) -> None:
        exchange = self.relay.exchange
        (exchange.request_body if self.inbound else exchange.response_body).add(data)
        if self.peer is None:  # uvloop may deliver data before pause_reading takes effect
            self.early.append(data)
            self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self.peer.transport.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None and self.inbound:
            return True  # not connected yet: the EOF is passed on once it is
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return False
        if peer.eof:  # both directions are done
            peer.transport.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep our side open: the other direction may still carry data

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if exc is not None:
                peer.transport.abort()  # pass a reset on as a reset
            else:
                peer.transport.close()
        if exc is not None and self.relay.exchange.error is None:
            who = "client" if self.inbound else "upstream"
            self.relay.exchange.error = f"{who}: {exc}"
        self.relay.side_lost(self)


class _Relay:
    """One client connection relayed to the active target's endpoint."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.exchange: Exchange
        self.client: _Side | None = None
        self._open = 0

    def begin(self, client: _Side) -> None:
        service = self.listener.service
        target = service.target()
        peer = client.transport.get_extra_info("peername")  # type: ignore[union-attr]
        self.exchange = self.listener.recorder.begin(service, target.name, peer and peer[0])
        self._open = 1
        self.client = client
        self.listener.relays.add(self)
        task = asyncio.get_running_loop().create_task(self._connect(client, target))
        self.listener.pending.add(task)
        task.add_done_callback(self.listener.pending.discard)

    async def _connect(self, client: _Side, target) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        timeout = self.listener.service.spec.timeout
        try:
            host, port = await target.tcp_address()
            async with asyncio.timeout(timeout):
                _, upstream = await loop.create_connection(lambda: _Side(self, False), host, port)
        except (OSError, TimeoutError, TargetUnavailable) as exc:
            reason = (
                exc.reason
                if isinstance(exc, TargetUnavailable)
                else (
                    f"no connection within {timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else f"cannot connect: {exc.strerror or exc}"
                )
            )
            self.exchange.error = reason
            if client.transport is not None:
                client.transport.close()
            return
        if client.transport is None or client.transport.is_closing():
            upstream.transport.close()
            return
        self._open += 1
        client.peer, upstream.peer = upstream, client
        if client.early:
            upstream.transport.write(b"".join(client.early))  # type: ignore[union-attr]
            client.early.clear()
        if client.eof and upstream.transport.can_write_eof():  # type: ignore[union-attr]
            upstream.transport.write_eof()  # type: ignore[union-attr]
        client.transport.resume_reading()

    def close(self) -> None:
        assert self.client is not None
        for side in (self.client, self.client.peer):
            if side is not None and side.transport is not None:
                side.transport.close()

    def side_lost(self, side: _Side) -> None:
        if side.inbound and self._open == 1 and side.peer is None:
            self._open = 0  # the upstream never connected (or is still connecting)
        else:
            self._open -= 1
        if self._open == 0:
            self.listener.relays.discard(self)
            self.listener.recorder.finish(self.listener.service, self.exchange)


class TcpListener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self.pending: set[asyncio.Task[None]] = set()
        self.relays: set[_Relay] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listen = self.service.spec.listen
        try:
            self._server = await loop.create_server(
                lambda: _Side(_Relay(self), True),
                listen.host,
                listen.port,
                reuse_address=True,
                backlog=1024,
            )
        except OSError as exc:
            raise bind_failure(self.service.name, str(listen), exc) from None
        host, port = self._server.sockets[0].getsockname()[:2]
        self.service.bound = (host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            self.service.bound = None
        for task in list(self.pending):
            task.cancel()
        for relay in list(self.relays):
            relay.close()
