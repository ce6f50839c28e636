"""A timeout for the current task, for the hot path.

`asyncio.timeout()` does the same job, but on Python 3.11 it costs several microseconds per use
(its state is an Enum, and enum attribute access is slow there): measurable at one per proxied
exchange. Same semantics: the task is cancelled when the time is up, and that cancellation (only
that one) comes out of the block as TimeoutError.

`rearm()` moves the deadline: an idle timer re-armed on every chunk of a streamed body costs a
float store, not a new timer (the timer, when it fires early, goes back to sleep until the
latest deadline).
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, Protocol

from devamb.proxy.errors import UpstreamFailed

if sys.version_info < (3, 12):
    # asyncio.current_task() is a Python function on 3.11 (a frame and a second loop lookup per
    # exchange); the C dict it reads answers the same, without either.
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]

    _current_task = _current_tasks.get
else:  # C code already, and the table above is no longer where 3.14 keeps the task
    _current_task = asyncio.current_task


class Due(Protocol):
    """What a `DueQueue` holds: a deadline, or an alarm (proxy/alarms.py)."""

    _queue: DueQueue | None  # the queue it waits in; None once it left it (ended, or rang)
    _expires: float  # the loop time it is due

    def _fire(self) -> None: ...


class DueQueue:
    """Things due at loop times that are asked for in the order they fall due, oldest first,
    so that a single timer for the head serves them all: the deadlines of one duration on one
    loop (one made later expires later), the alarms of one loop (alarms.py). One that ends
    leaves its entry behind (popped when it reaches the head, or by a compaction); a proxied
    exchange thus costs a deque append instead of a loop timer of its own."""

    __slots__ = ("armed", "entries", "handle", "live", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.entries: deque[Due] = deque()
        self.handle: asyncio.TimerHandle | None = None
        self.armed = 0.0  # when the handle runs
        self.live = 0

    def add(self, due: Due) -> None:
        """`due` (due no sooner than the last one added) waits here."""
        due._queue = self
        self.entries.append(due)
        self.live += 1
        handle, when = self.handle, due._expires
        if handle is None or when < self.armed:  # (the latter: every one before it left)
            if handle is not None:
                handle.cancel()
            self.handle = self.loop.call_at(when, self._sweep)
            self.armed = when

    def leave(self) -> None:
        """One of its entries no longer needs it (ended, or moved to a timer of its own).
        The timer stays: it runs once at its time and finds nothing, instead of a timer per
        exchange when exchanges come one at a time."""
        self.live -= 1
        entries = self.entries
        while entries and entries[0]._queue is not self:
            entries.popleft()
        if len(entries) > 64 and len(entries) > 4 * self.live:  # held up behind a slow one
            self.entries = deque(d for d in entries if d._queue is self)

    def _sweep(self) -> None:
        self.handle = None
        entries, now = self.entries, self.loop.time()
        while entries:
            head = entries[0]
            if head._queue is not self:
                entries.popleft()
            elif head._expires <= now + EARLY:
                entries.popleft()
                self.live -= 1
                head._queue = None
                head._fire()
            else:
                self.handle = self.loop.call_at(head._expires, self._sweep)
                self.armed = head._expires
                return


EARLY = 0.001  # a timer may run this much before its time (libuv counts milliseconds)
MAX_QUEUES = 64  # durations with a queue at once (a profile has a handful)
_queues: dict[float, DueQueue] = {}


def _queue(loop: asyncio.AbstractEventLoop, seconds: float) -> DueQueue:
    """A new queue for `seconds` deadlines on `loop` (one loop at a time has them shared:
    tests start many loops one after the other)."""
    global _queues
    if seconds in _queues or len(_queues) >= MAX_QUEUES:
        _queues = {s: q for s, q in _queues.items() if q.loop is loop and q.entries}
    queue = _queues[seconds] = DueQueue(loop)
    return queue


class Deadline:
    __slots__ = ("_cancelling", "_expires", "_fired", "_handle", "_loop", "_queue", "_task")

    def __init__(self, seconds: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`loop`: the running loop, when the caller holds it (asking costs a getpid() system
        call on Python 3.11)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        self._loop = loop
        task = _current_task(loop)
        assert task is not None, "Deadline used outside a task"
        self._task: asyncio.Task[Any] | None = task  # (let go of on exit: `__exit__`)
        self._cancelling = task.cancelling()  # cancellations already asked for by others
        self._fired = False
        self._expires = loop.time() + seconds
        self._handle: asyncio.TimerHandle | None = None  # a timer of its own, once re-armed
        self._queue: DueQueue | None = None
        queue = _queues.get(seconds)
        if queue is None or queue.loop is not loop:
            queue = _queue(loop, seconds)
        queue.add(self)

    @property
    def expires(self) -> float:
        """The loop time at which the time is up."""
        return self._expires

    def rearm(self, seconds: float) -> None:
        """The time is up `seconds` from now (sooner or later than before)."""
        if self._fired:
            return
        self._expires = expires = self._loop.time() + seconds
        if self._queue is not None:  # its place in the queue no longer holds: a timer of its own
            queue, self._queue = self._queue, None
            queue.leave()
            self._handle = self._loop.call_at(expires, self._fire)
        elif expires < self._handle.when():  # type: ignore[union-attr]
            self._handle.cancel()  # type: ignore[union-attr]
            self._handle = self._loop.call_at(expires, self._fire)

    def _fire(self) -> None:
        handle = self._handle
        if handle is not None and self._expires > handle.when():  # re-armed later: sleep on
            self._handle = self._loop.call_at(self._expires, self._fire)
            return
        self._fired = True
        if self._task is not None:
            self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._queue is not None:
            queue, self._queue = self._queue, None
            queue.leave()
        elif self._handle is not None:
            self._handle.cancel()
        task, self._task = self._task, None  # (kept by a frame that an exception's traceback
        # keeps, the task's own failure would be a cycle: the task, its exception, the frame)
        fired = self._fired and task is not None and task.uncancel() <= self._cancelling
        if fired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


class ClientStalled(UpstreamFailed):
    """The client stopped sending its request body for the idle timeout: 408, as nginx's
    client_body_timeout and Envoy's stream idle timeout answer. Not the upstream's fault, so
    it counts against no endpoint and is never retried."""

    def __init__(self, idle: float) -> None:
        super().__init__(
            408, "request-timeout", f"the client sent no request body bytes for {idle:g}s"
        )


class IdleBody:
    """A request body on its way upstream, re-arming `deadline` to `idle` seconds whenever a
    byte moves either way: a chunk from the client, or the upstream taking the last one.
    When the time is up, `on_client` says which side stalled."""

    __slots__ = ("deadline", "done", "idle", "on_client", "source")

    def __init__(self, source: AsyncIterable[bytes], deadline: Deadline, idle: float) -> None:
        self.source = source
        self.deadline = deadline
        self.idle = idle
        self.on_client = False  # waiting for the client's next chunk (else for the upstream)
        self.done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        source = aiter(self.source)
        deadline, idle = self.deadline, self.idle
        while True:
            deadline.rearm(idle)  # the upstream took the last chunk (or this is the first)
            self.on_client = True
            try:
                chunk = await anext(source)
            except StopAsyncIteration:
                break
            self.on_client = False
            deadline.rearm(idle)
            yield chunk
        self.on_client = False
        self.done = True


async def read_within(body: AsyncIterable[bytes], idle: float) -> bytes:
    """A whole request body, read with no pause longer than `idle` (else ClientStalled)."""
    chunks: list[bytes] = []
    try:
        with Deadline(idle) as deadline:
            async for chunk in body:
                chunks.append(chunk)
                deadline.rearm(idle)
    except TimeoutError:
        raise ClientStalled(idle) from None
    return b"".join(chunks)
