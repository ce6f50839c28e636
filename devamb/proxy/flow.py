"""A flow-controlled queue of byte chunks: pushed by a source, pulled by a task.

The shaped directions of a TCP connection (service.tcp) and of a WebSocket session
(websocket_shape) both receive bytes from a socket faster than their shapers may let them out;
the socket stops being read while too much is queued, and is read again once the task caught up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

FLOW_HIGH = 256 * 1024  # bytes queued before the source is paused
FLOW_LOW = 64 * 1024  # ... and resumed once fewer are left


class FlowQueue:
    """Chunks fed by a source and taken by `chunks()`; past `high` queued bytes `pause` runs and
    `room` clears, below `low` again `resume` runs and `room` is set."""

    def __init__(self, pause: Callable[[], None] | None = None,
                 resume: Callable[[], None] | None = None, *,
                 high: int = FLOW_HIGH, low: int = FLOW_LOW) -> None:
        self._pause = pause
        self._resume = resume
        self._high = high
        self._low = low
        self.room = asyncio.Event()  # set while the queue has room (a source may wait for it)
        self.room.set()
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._eof = False
        self._wakeup = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self._high and self.room.is_set():
            self.room.clear()
            if self._pause is not None:
                self._pause()
        self._wakeup.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._wakeup.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The chunks as they were fed, until `feed_eof` and the queue is empty."""
        while True:
            if self._queue:
                chunk = self._queue.popleft()
                self._queued -= len(chunk)
                if not self.room.is_set() and self._queued < self._low:
                    self.room.set()
                    if self._resume is not None:
                        self._resume()
                yield chunk
            elif self._eof:
                return
            else:
                self._wakeup.clear()
                await self._wakeup.wait()
