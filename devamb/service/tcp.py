"""The TCP relay: asyncio Protocols with backpressure and half-close passed through.

Connections without faults take the fast path: each side writes straight into its peer's
transport from `data_received`. When faults fire for a connection, the affected direction
goes through a `ShapedFlow` (tcp_flow.py), a task that passes the bytes through the faults'
shapers.

Services that speak a protocol devamb reads (`postgres`, `redis`) relay the same way, with a
follower beside the relay (devamb/wire/follower.py, `_Following` below): it is handed each
chunk as it passes and reports commands as exchanges; only when command-level faults are armed
does it split the client's stream at command boundaries for the relay to act on.

Targets that speak the client's protocol themselves (`terminates_tcp`: the Redis sharding
proxy) are handed the client's stream instead (tcp_terminate.py), with the same
connection-level faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from devamb.proxy.connection import cut, reset
from devamb.proxy.dial import dial_with
from devamb.proxy.listen import bind_failure, create_server
from devamb.service.tcp_flow import ShapedFlow
from devamb.targets.base import TargetUnavailable
from devamb.wire import is_wire

if TYPE_CHECKING:  # (the followers and TLS termination: imported by the relays that use them)
    from devamb.faults.chain import Plan, Shaping
    from devamb.inspect.exchange import BodyPreview, Exchange
    from devamb.service.core import Service
    from devamb.service.recorder import Recorder
    from devamb.service.tcp_follow import Following as _Following
    from devamb.service.tcp_follow import Later
    from devamb.service.tcp_terminate import ClientChunks
    from devamb.targets.base import Target


class _Previewing(Protocol):
    """A preview of a relayed connection's, counted against the record budget while it is
    open (`_Relay.opened`/`filled`): a side's, or a terminating target's answer."""

    body: BodyPreview
    reserved: int  # of its bytes, the store counts so far


class _Side(asyncio.Protocol):
    """One socket of a relayed connection; bytes it receives go to its peer (or its flow)."""

    __slots__ = (
        "body", "can_write", "discard", "early", "eof", "flow", "inbound", "out", "peer",
        "reader", "relay", "reserved", "transport",
    )

    def __init__(self, relay: _Relay, inbound: bool) -> None:
        self.relay = relay
        self.inbound = inbound  # True for the client's side
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.flow: ShapedFlow | None = None
        self.eof = False
        self.discard = False  # a black hole swallows what the client sends
        self.reader: ClientChunks | None = None  # set when a target terminates TCP
        self.can_write: asyncio.Event | None = None
        self.reserved = 0  # bytes the store counts for this side's preview until the record
        self.early: list[bytes] = []  # the client's bytes that arrived before the upstream
        # connected (an upstream side is linked in connection_made, before it can receive)
        self.body: BodyPreview  # the connection record's preview of this direction
        if not inbound:  # (the client's: set in `begin`, before anything is received)
            self.body = relay.exchange.response_body
        # where `data_received` hands each chunk: `_route` until the side is linked, then
        # what `settle` chooses (the peer's write, a flow, a follower's reading)
        self.out: Callable[[bytes], object] = self._route

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream socket's transport
        if self.inbound:
            self.transport.pause_reading()  # nothing is read until the upstream is connected
            self.relay.begin(self)
        else:
            # Link now, before the loop can deliver a byte: a server that speaks first (a
            # banner, gRPC's SETTINGS) may send before `create_connection` returns to us.
            self.relay.link(self)

    def data_received(self, data: bytes) -> None:
        body = self.body  # counted; while its preview is not full (a follower's keeps none),
        size = body.size  # its head kept (`BodyPreview.add`, inline)
        body.size = size + len(data)
        if size < body.limit:
            if not size:  # its first bytes: the store makes room for the preview now
                self.relay.opened(self)
            room = body.limit - len(body.data)
            if room > len(data):
                body.data += data
            elif room > 0:  # it fills (a view of the chunk's head: no copy besides its own)
                body.data += data if len(data) == room else memoryview(data)[:room]
                if self.reserved < len(body.data):  # (not made room for when it began)
                    self.relay.filled(self)
        # (`self.out(data)` would look `out` up as a method each time: CPython 3.11 specialises
        # neither that lookup of a slot nor of an instance attribute; read as one, it is)
        out = self.out
        out(data)

    def _route(self, data: bytes) -> None:
        """A chunk before the side is linked (or while a black hole discards the client's)."""
        if not self.discard:
            self.pass_on(data)

    def settle(self) -> None:
        """Choose `out` for a linked side (or a terminating target's client): what a chunk goes
        through without asking again. What this depends on is set before and does not change
        after, but a follower's stopping: `Following` then calls this again."""
        following = self.relay.following
        if following is not None and following.follower.opaque is None and self.peer is not None:
            self.out = following.from_client if self.inbound else following.from_server
        elif self.reader is not None:
            self.out = self.reader.feed_data
        elif self.flow is not None:
            self.out = self.flow.feed
        elif self.peer is not None and self.peer.transport is not None:
            self.out = self.peer.transport.write
        else:
            self.out = self._route

    def pass_on(self, data: bytes) -> None:
        """Relay `data` on (to the peer, or through the flow shaping this direction)."""
        if self.reader is not None:
            self.reader.feed_data(data)
        elif self.flow is not None:
            self.flow.feed(data)
        elif self.peer is None:  # uvloop may deliver data before pause_reading takes effect
            if self.inbound:  # (an upstream side is linked when it connects, or closed)
                self.early.append(data)
                self.transport.pause_reading()  # type: ignore[union-attr]
        else:
            self.peer.transport.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self.eof = True
        if self.reader is not None:
            self.reader.feed_eof()
            return True
        if self.flow is not None:
            self.flow.feed_eof()
            return True
        peer = self.peer
        if peer is None and self.inbound:
            return True  # not connected yet: the EOF is passed on once it is
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return False
        delay = self.relay.close_delay if not self.inbound else 0.0
        if delay:  # slow_close: the client learns of the end late
            asyncio.get_running_loop().call_later(delay, self.relay.pass_eof, peer)
        else:
            self.relay.pass_eof(peer)
        return True  # keep our side open: the other direction may still carry data

    def pause_writing(self) -> None:
        if self.can_write is not None:
            self.can_write.clear()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.can_write is not None:
            self.can_write.set()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if exc is not None:
                reset(peer.transport)  # pass a reset on as a reset
            elif self.relay.close_delay:
                asyncio.get_running_loop().call_later(
                    self.relay.close_delay, peer.transport.close
                )
            else:
                peer.transport.close()
        if exc is not None and self.relay.exchange.error is None:
            who = "client" if self.inbound else "upstream"
            self.relay.exchange.error = f"{who}: {exc}"
        if self.flow is not None:
            self.flow.feed_eof()
        if self.reader is not None:
            self.reader.feed_eof()
        if self.can_write is not None:
            self.can_write.set()
        self.relay.side_lost(self)


class _Relay:
    """One client connection relayed to the active target's endpoint."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.exchange: Exchange
        self.client: _Side | None = None
        self.close_delay = 0.0
        self._directions_done = 0
        self._target: Target | None = None
        self._address: tuple[str, int] | None = None
        self._connecting: tuple[Target, tuple[str, int]] | None = None
        self.service: Service
        self.shaping: Shaping | None = None
        self._open = 0
        self.following: _Following | None = None  # postgres, redis: the protocol's reader
        self.draining = False  # closed at the follower's next safe point (on_switch: drain)
        self.reserved = 0  # bytes of this record's previews the store counts already

    def begin(self, client: _Side) -> None:
        service = self.service = self.listener.service  # kept: a reload may swap the listener's
        target = service.target()
        peer = client.transport.get_extra_info("peername")  # type: ignore[union-attr]
        self.exchange = self.listener.recorder.begin(service, target.name, peer and peer[0])
        client.body = self.exchange.request_body
        if is_wire(service.spec.protocol):
            from devamb.service.tcp_follow import Following

            self.following = Following.start(self, service)
        self._open = 1
        self.client = client
        self.listener.relays.add(self)
        service.connections.add(self)
        plan = service.faults.roll_tcp()
        if plan is not None:
            self.exchange.faults = plan.names
            if plan.refuses:
                self.exchange.error = f"fault {plan.names[0]}: connection refused"
                reset(client.transport)
                return
            self.shaping = plan.shaping()
            self.close_delay = self.shaping.close_delay() if self.shaping else 0.0
        task = asyncio.get_running_loop().create_task(self._start(client, target, plan))
        self.listener.pending.add(task)
        task.add_done_callback(self.listener.pending.discard)

    async def _start(self, client: _Side, target: Target, plan: Plan | None) -> None:
        hole = next((f for f in plan.fired if f.holds_connection()), None) if plan else None
        if hole is not None:
            client.discard = True  # a black hole: read and drop, never connect
            client.transport.resume_reading()  # type: ignore[union-attr]
            if not await hole.hold():
                self.exchange.error = f"fault timeout: held {hole.params.timeout:g}s, then closed"
                cut(client.transport, with_reset=False)
                return
            client.discard = False
        if target.terminates_tcp:
            from devamb.service.tcp_terminate import serve_terminating

            await serve_terminating(self, client, target)
        else:
            await self._connect(client, target)

    async def _connect(self, client: _Side, target: Target) -> None:
        timeout = self.service.spec.timeout
        address: tuple[str, int] | None = None
        try:
            address = host, port = await target.tcp_address()
            self._connecting = target, address  # for `link`, when it connects
            async with asyncio.timeout(timeout):
                await dial_with(target.dial())(lambda: _Side(self, False), host, port)
        except (OSError, TimeoutError, TargetUnavailable) as exc:
            if isinstance(exc, TargetUnavailable):
                reason = exc.reason
            elif isinstance(exc, TimeoutError):
                reason = f"no connection within {timeout:g}s"
            else:
                reason = f"cannot connect: {exc.strerror or exc}"
            if address is not None and not isinstance(exc, TargetUnavailable):
                target.tcp_outcome(address, reason, exc)
            self.exchange.error = reason
            if client.transport is not None:
                client.transport.close()

    def link(self, upstream: _Side) -> None:
        """The upstream socket is connected: join it to the client, then pass the client's early
        bytes on and start reading. Runs in `connection_made`, so nothing arrives unlinked."""
        client = self.client
        assert client is not None and self._connecting is not None
        if client.transport is None or client.transport.is_closing():
            upstream.transport.close()  # type: ignore[union-attr]
            return
        self._open += 1
        self._target, self._address = target, address = self._connecting
        target.tcp_outcome(address, None)
        client.peer, upstream.peer = upstream, client
        shaping = self.shaping
        if shaping is not None and shaping.up:
            client.flow = ShapedFlow(self, client, upstream, shaping.upstream,
                                lambda: self._flow_ended(upstream))
        if shaping is not None and shaping.down:
            upstream.flow = ShapedFlow(self, upstream, client, shaping.downstream,
                                  lambda: self._flow_ended(client))
        if self.following is not None:
            self.following.linked(client, upstream)
        client.settle()
        upstream.settle()
        for data in client.early:
            client.out(data)
        client.early.clear()
        if client.eof:
            if client.flow is not None:
                client.flow.feed_eof()
            elif upstream.transport.can_write_eof():  # type: ignore[union-attr]
                upstream.transport.write_eof()  # type: ignore[union-attr]
        client.transport.resume_reading()

    async def _flow_ended(self, sink: _Side) -> None:
        if self.close_delay and sink.inbound:  # slow_close: the client learns of the end late
            await asyncio.sleep(self.close_delay)
        self.pass_eof(sink)

    def pass_eof(self, sink: _Side) -> None:
        """One direction has ended: half-close towards `sink`; once both have, close."""
        transport = sink.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        self._directions_done += 1
        if self._directions_done >= 2:
            self.close()

    def close(self) -> None:
        if self.client is None:  # (ended: `_untie`)
            return
        for side in (self.client, self.client.peer):
            if side is not None and side.transport is not None:
                side.transport.close()

    def reset(self) -> None:
        """Cut both sockets with a reset (on_switch: close, a fault's reset)."""
        if self.client is None:  # (ended: `_untie`)
            return
        for side in (self.client, self.client.peer):
            if side is not None and side.transport is not None:
                reset(side.transport)

    @property
    def target(self) -> str:
        return self.exchange.target

    def drain(self) -> None:
        """Close at the next safe point (now, when the connection is at one)."""
        self.draining = True
        self.exchange.own_notes().setdefault("drain", "waiting for a safe point")
        if self.following is not None:
            self.following.check_drain()
        else:
            self.close()

    def opened(self, side: _Previewing) -> None:
        """A preview of this connection's (a side's, or a terminating target's answer) has its
        first bytes: the store counts its limit against the budget from now (completed
        records make room) rather than only once the record arrives, as much of it as open
        records may take ahead (`ExchangeStore.reserve_ahead`). Before the preview grows, so
        that what the records it pushes out held is reused."""
        side.reserved = size = self.listener.recorder.store.reserve_ahead(side.body.limit)
        self.reserved += size

    def filled(self, side: _Previewing) -> None:
        """A preview is full and was not counted whole when it began: count the rest."""
        size = len(side.body.data) - side.reserved
        side.reserved += size
        self.reserved += size
        self.listener.recorder.store.reserve(size)

    def side_lost(self, side: _Side) -> None:
        if side.inbound and self._open == 1 and side.peer is None:
            self._open = 0  # the upstream never connected (or is still connecting)
        else:
            self._open -= 1
        if self._open == 0:
            if self._target is not None and self._address is not None:
                self._target.tcp_closed(self._address)
            self.listener.relays.discard(self)
            self.service.connections.discard(self)
            if self.following is not None:
                self.following.ended()
            if self.reserved:  # (the record, added now, counts its previews itself)
                self.listener.recorder.store.release(self.reserved)
                self.reserved = 0
            self.listener.recorder.finish(self.service, self.exchange)
            self._untie()

    def _untie(self) -> None:
        """Both sockets are gone: drop the links that make the relay, its sides and their
        helpers a reference cycle, so reference counting frees them now. Otherwise the
        record's previews outlive the record until a full collection, which the engine makes
        rare (engine/collector.py), and the record budget would not bound them."""
        client = self.client
        if client is None:
            return
        for side in (client, client.peer):
            if side is not None:
                side.peer = side.flow = side.reader = None
                side.out = _ended
        self.client = None
        self.following = None


def _ended(data: bytes) -> None:
    """A side's `out` once its relay has ended (nothing more can arrive)."""


class TcpListener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self.pending: set[asyncio.Task[None]] = set()
        self.relays: set[_Relay] = set()
        self._later: Later | None = None
        self._server: asyncio.Server | None = None

    @property
    def later(self) -> Later:
        """The followers' reading of chunks passed on (tcp_follow.py), made for the first:
        a plain TCP relay never imports the followers (issue 22: RSS)."""
        if self._later is None:
            from devamb.service.tcp_follow import Later

            self._later = Later(self.recorder, self.service)
        return self._later

    async def start(self) -> None:
        listen = self.service.spec.listen
        try:
            self._server = await create_server(
                lambda: _Side(_Relay(self), True),
                listen.host,
                listen.port,
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
