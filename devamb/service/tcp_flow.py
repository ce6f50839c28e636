"""One shaped direction of a relayed TCP connection: source bytes -> the faults' shapers -> sink.

Used when faults fire for a connection (service.tcp): the direction's bytes queue in a
`FlowQueue` (its source paused while too much is queued) and a task passes them through the
shapers to the sink. A shaper's `CutConnection` cuts both sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from devamb.faults.base import Stream
from devamb.proxy.connection import cut
from devamb.proxy.errors import CutConnection
from devamb.proxy.flow import FlowQueue

if TYPE_CHECKING:
    from devamb.service.tcp import _Relay, _Side


class ShapedFlow(FlowQueue):
    """One direction of a faulted connection: source bytes -> shapers -> sink, in a task.

    The source is the other socket (paused while too much is queued) or, for a target that
    terminates TCP, the target itself (which waits for `room`). `on_end` runs once the source
    ended and every shaped byte was written.
    """

    def __init__(self, relay: _Relay, source: _Side | None, sink: _Side,
                 shape: Callable[[Stream], Stream],
                 on_end: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(self._pause_source, self._resume_source)
        self.relay = relay
        self.source = source
        self.sink = sink
        self.on_end = on_end
        self.task = asyncio.get_running_loop().create_task(self._run(shape))
        relay.listener.pending.add(self.task)
        self.task.add_done_callback(relay.listener.pending.discard)

    def _pause_source(self) -> None:
        if self.source is not None and self.source.transport is not None:
            self.source.transport.pause_reading()

    def _resume_source(self) -> None:
        if self.source is not None and self.source.transport is not None:
            self.source.transport.resume_reading()

    async def _run(self, shape: Callable[[Stream], Stream]) -> None:
        try:
            if await self._pass(shape) and self.on_end is not None:
                await self.on_end()
        finally:
            # done: the callbacks that make the flow a reference cycle with itself and its
            # relay go, so a finished relay is freed without the collector (tcp.py `_untie`)
            self._pause = self._resume = self.on_end = None

    async def _pass(self, shape: Callable[[Stream], Stream]) -> bool:
        """The shaped bytes written to the sink; False when the sink closed or a shaper cut."""
        sink = self.sink.transport
        try:
            async for piece in shape(self.chunks()):
                if sink is None or sink.is_closing():
                    return False
                sink.write(piece)
                can_write = self.sink.can_write  # a terminating target's client: backpressure
                if can_write is not None and not can_write.is_set():
                    await can_write.wait()
        except CutConnection as exc:
            self.relay.exchange.error = exc.reason
            cut(self.relay.client.transport if self.relay.client else None,
                with_reset=exc.reset)
            cut(sink, with_reset=exc.reset)
            return False
        finally:
            self.room.set()  # nobody waits for room in a flow that stopped
        return True
