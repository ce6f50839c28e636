"""A relayed connection's follower, wired to the relay: what it is fed, what it records, and
what the relay does at a command boundary when command-level faults are armed
(wire/follower.py describes the seam)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from devamb.inspect.lazy import LazyExchange, Origin
from devamb.service.recorder import Held
from devamb.wire.follower import (
    FORWARD,
    Action,
    Answer,
    Close,
    Command,
    Delay,
    Exchanges,
    Follower,
    FollowerOptions,
    Item,
    ToClient,
    follower_for,
)

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.service.core import Service
    from devamb.service.recorder import Recorder
    from devamb.service.tcp import _Relay, _Side


class Later:
    """Chunks the relay passed on unchanged, read by their followers once the loop's turn has
    handled every socket that was ready: each chunk's write goes out before any follower reads,
    so the other connections' chunks that arrived together do not wait on the reading. The
    turn's callback runs before the loop polls again: before a client can read its reply.

    A follower with chunks waiting here has no command fault applied (`Following.from_client`
    reads them before it sets `gating`), so each is read as it would have been when it passed."""

    __slots__ = ("held", "items", "loop", "read", "record_held", "scheduled", "service")

    def __init__(self, recorder: Recorder, service: Service) -> None:
        # each chunk waiting as three entries (no tuple each): its follower, the follower's
        # reading of its direction (`client_data`, `server_data`), the chunk
        self.items: list[Any] = []
        self.scheduled = False
        # the listener's loop, kept from the first turn: `get_running_loop` makes a getpid
        # system call each time (CPython checks for a fork), one per turn of the relay
        self.loop: asyncio.AbstractEventLoop | None = None
        self.read = self.run  # (the callback scheduled each turn, bound once)
        # the records the turn's chunks complete, counted and stored once it is read
        self.held = Held()
        self.record_held = recorder.record_held
        self.service = service

    def schedule(self) -> None:
        self.scheduled = True
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        loop.call_soon(self.read)

    def run(self) -> None:
        """Read what waits, in the order it came (also called before a chunk read at once)."""
        self.scheduled = False
        items = self.items
        held = self.held
        # (a lone chunk's record goes as it would at once: holding it costs a call more)
        held.open = len(items) > 3
        try:
            each = iter(items)  # (flat: follower, its reading of that direction, data; zip
            for follower, read, data in zip(each, each, each, strict=True):  # reuses its tuple)
                if follower.opaque is not None:
                    continue
                try:
                    read(data)
                except Exception as exc:  # (a follower's bug: that connection is relayed on,
                    follower.lose_sync(f"devamb could not follow: {exc!r}")  # unread)
        finally:
            items.clear()
            held.open = False
            if held.records:
                self.record_held(self.service, held)


class Following(Exchanges):
    """The relay's side of the seam: feeds the follower, records its exchanges, acts on its
    decisions."""

    def __init__(self, relay: _Relay, service: Service) -> None:
        self.relay = relay
        self.service = service
        options = FollowerOptions(redact_params=service.spec.redact_params)
        factory = follower_for(service.spec.protocol)
        assert factory is not None
        self.new_id = relay.listener.recorder.new_id  # type: ignore[method-assign]
        self.new_ids = relay.listener.recorder.new_ids  # type: ignore[method-assign]
        self.later: Later = relay.listener.later
        self.record_one = relay.listener.recorder.one_recorder(  # type: ignore[method-assign,assignment]
            service, self.later.held)
        self.follower: Follower = factory(self, options)
        self.read_client = self.follower.client_data  # (bound once: `Later` calls them)
        self.read_server = self.follower.server_data
        self.faults = service.faults  # (its `chain` is swapped when the faults change)
        self.relays = relay.listener.relays  # the listener's open connections (changed in place)
        self.client: _Side  # the relay's two sides, once `linked`
        self.upstream: _Side
        # where a chunk that passes goes (the peer's socket, or the flow shaping its way)
        self.to_server: Callable[[bytes], object]
        self.to_client: Callable[[bytes], object]

    @classmethod
    def start(cls, relay: _Relay, service: Service) -> Following | None:
        if follower_for(service.spec.protocol) is None:
            return None
        # the connection's record keeps counts only: its raw bytes hold passwords
        relay.exchange.request_body.limit = relay.exchange.response_body.limit = 0
        return cls(relay, service)

    @property
    def active(self) -> bool:
        return self.follower.opaque is None

    # -- Exchanges ----------------------------------------------------------------------------

    def begin(self) -> Exchange:
        conn = self.relay.exchange
        return self.relay.listener.recorder.begin(self.service, conn.target, conn.client)

    def finish(self, exchange: Exchange) -> None:
        self.relay.listener.recorder.finish(self.service, exchange)

    def connection(self) -> Exchange:
        return self.relay.exchange

    def origin(self) -> Origin:
        conn = self.relay.exchange
        return Origin(self.service.name, conn.target, self.service.spec.protocol, conn.client,
                      conn.id, self.service.spec.inspect.bodies)

    def record(self, lazy: LazyExchange) -> None:
        self.relay.listener.recorder.record_many(self.service, [lazy])

    def record_many(self, records: Sequence[LazyExchange],
                    runs: Sequence[tuple[float, bool, int]] | None = None) -> None:
        self.relay.listener.recorder.record_many(self.service, records, runs)

    # -- bytes --------------------------------------------------------------------------------

    def linked(self, client: _Side, upstream: _Side) -> None:
        """The relay joined its two sides: the chunks each passes on go to the other's socket
        (or through the flow shaping that direction)."""
        self.client, self.upstream = client, upstream
        self.to_server = client.flow.feed if client.flow is not None else (
            upstream.transport.write)  # type: ignore[union-attr]
        self.to_client = upstream.flow.feed if upstream.flow is not None else (
            client.transport.write)  # type: ignore[union-attr]

    def from_client(self, data: bytes) -> None:
        """A chunk from the client (the client side's `out` while following). One that passes
        unchanged is written on first and read after; while other connections are open, read
        at the end of the loop's turn (`Later`)."""
        follower = self.follower
        if follower.opaque is not None:  # not following any more: the relay passes it on
            self.client.settle()
            self.client.out(data)
            return
        later = self.later
        waiting = later.items
        if not self.faults.chain.command_armed:  # (`FaultManager.command_armed`, inline)
            follower.gating = False
            # (a plain follower passes every chunk unchanged while no command fault is armed)
            if follower.plain or follower.passes_unchanged(True):
                to_server = self.to_server  # relayed first, read after (called as read: see
                to_server(data)  # `_Side.data_received`)
                if waiting or len(self.relays) > 1:
                    waiting.append(follower)
                    waiting.append(self.read_client)
                    waiting.append(data)
                    if not later.scheduled:
                        later.schedule()
                    return
                follower.client_data(data)
                return
        else:
            if waiting:
                later.run()  # (what passed before a command fault was armed: read without it)
            follower.gating = True
            if follower.passes_unchanged(True):
                self.to_server(data)
                follower.client_data(data)
                return
        if waiting:
            later.run()
        items = follower.client_data(data)
        if items is None:
            self.to_server(data)
        else:
            self._client_items(self.client, items)

    def from_server(self, data: bytes) -> None:
        """A chunk from the server (the upstream side's `out` while following): as
        `from_client`, answers of devamb's put between the server's pieces."""
        follower = self.follower
        if follower.opaque is not None:  # not following any more: the relay passes it on
            self.upstream.settle()
            self.upstream.out(data)
            return
        later = self.later
        waiting = later.items
        if follower.plain or follower.passes_unchanged(False):
            to_client = self.to_client  # (called as read: see `_Side.data_received`)
            to_client(data)
            if not self.relay.draining and (waiting or len(self.relays) > 1):
                waiting.append(follower)
                waiting.append(self.read_server)
                waiting.append(data)
                if not later.scheduled:
                    later.schedule()
                return
            if waiting:
                later.run()
            follower.server_data(data)
        else:
            if waiting:
                later.run()
            pieces = follower.server_data(data)
            if pieces is None:
                self.to_client(data)
            else:
                for piece in pieces:
                    self.to_client(piece)
        if self.relay.draining:
            self.check_drain()

    def _client_items(self, client: _Side, items: list[Item] | None) -> None:
        upstream = client.peer
        assert upstream is not None
        while items:
            command: Command | None = None
            for item in items:
                if isinstance(item, bytes):
                    client.pass_on(item)
                elif isinstance(item, ToClient):
                    upstream.pass_on(item.data)  # the upstream side writes to the client
                else:
                    command = item.command
            if command is None:
                return
            action, names = self._decide(command)
            self.follower.resolve(action, names)
            if isinstance(action, Close):
                self.relay.exchange.error = action.reason or "closed by a fault"
                fired = self.relay.exchange.faults  # (assigned, not extended: see Exchange)
                self.relay.exchange.faults = [*fired, *(n for n in names if n not in fired)]
                self.relay.reset() if action.reset else self.relay.close()
                return
            if isinstance(action, Delay) and action.seconds > 0:
                transport = client.transport
                assert transport is not None
                transport.pause_reading()
                asyncio.get_running_loop().call_later(action.seconds, self._resume, client)
                return
            items = self.follower.client_data(b"")

    def _resume(self, client: _Side) -> None:
        transport = client.transport
        if transport is None or transport.is_closing():
            return
        if self.later.items:
            self.later.run()
        transport.resume_reading()
        self._client_items(client, self.follower.client_data(b""))

    def _decide(self, command: Command) -> tuple[Action, list[str]]:
        plan = self.service.faults.roll_command(command.fields)
        if plan is None:
            return FORWARD, []
        chosen: Action = FORWARD
        delay = 0.0
        for fault, name in zip(plan.fired, plan.names, strict=True):
            action = fault.on_command(name)
            if isinstance(action, Close):
                return action, plan.names
            if isinstance(action, Answer) and not isinstance(chosen, Answer):
                chosen = action
            elif isinstance(action, Delay):
                delay += action.seconds
        if isinstance(chosen, Answer):
            return chosen, plan.names
        return (Delay(delay) if delay else FORWARD), plan.names

    # -- drain and end --------------------------------------------------------------------------

    def check_drain(self) -> None:
        """Draining: close once the connection is at a safe point (at once if opaque)."""
        relay = self.relay
        if not relay.draining:
            return
        if self.later.items:
            self.later.run()
        follower = self.follower
        if follower.opaque is not None:
            relay.exchange.own_notes()["drain"] = "closed at once: the connection is opaque"
        elif follower.safe_point():
            relay.exchange.own_notes()["drain"] = "closed at a safe point"
        else:
            return
        relay.draining = False
        client = relay.client
        upstream = client.peer if client is not None else None
        goodbye = follower.safe_close() if follower.opaque is None else b""
        if goodbye and upstream is not None and upstream.transport is not None:
            upstream.transport.write(goodbye)
        relay.close()

    def ended(self) -> None:
        if self.later.items:
            self.later.run()
        self.follower.ended(self.relay.exchange.error)
        # the relay is gone: its sides and their sockets' writes go from here, so that the
        # relay is freed without the collector (tcp.py `_Relay._untie`); what is left, the
        # follower and this, holds no preview
        for name in ("relay", "client", "upstream", "to_server", "to_client"):
            self.__dict__.pop(name, None)
