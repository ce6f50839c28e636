"""The engine's event bus: publishing never blocks; slow subscribers lose their oldest events."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Set

from devamb.control.events import EngineEvent, EventsLost

DEFAULT_QUEUE = 10_000


class Subscription:
    def __init__(self, bus: EventBus, size: int) -> None:
        self._bus = bus
        self._queue: deque[EngineEvent] = deque()
        self._size = size
        self._lost = 0
        self._wakeup = asyncio.Event()
        self.closed = False

    def push(self, event: EngineEvent) -> None:
        if len(self._queue) >= self._size:
            self._queue.popleft()
            self._lost += 1
        self._queue.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._bus._subscribers.discard(self)

    async def get(self) -> EngineEvent | None:
        """The next event, an EventsLost notice first if any were dropped; None once closed."""
        while not self._queue and not self._lost:
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._lost:
            lost, self._lost = self._lost, 0
            return EventsLost(count=lost)
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[EngineEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[EngineEvent]:
        try:
            while (event := await self.get()) is not None:
                yield event
        finally:
            self.close()


class EventBus:
    """`mask`, if given, sees every published event once before any subscriber does: the engine
    hands in its secret masker here (the bus cannot know the profile's `${VAR}` values)."""

    def __init__(self, mask: Callable[[EngineEvent], EngineEvent] | None = None) -> None:
        self._subscribers: set[Subscription] = set()
        # the same set, read as is by a hot publisher: empty (falsy) while nobody listens
        self.subscribers: Set[Subscription] = self._subscribers
        self._mask = mask

    @property
    def has_subscribers(self) -> bool:
        """Lets publishers skip building events nobody reads."""
        return bool(self._subscribers)

    def subscribe(self, size: int = DEFAULT_QUEUE) -> Subscription:
        sub = Subscription(self, size)
        self._subscribers.add(sub)
        return sub

    def publish(self, event: EngineEvent) -> None:
        if not self._subscribers:
            return
        if self._mask is not None:
            event = self._mask(event)
        for sub in self._subscribers:
            sub.push(event)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
