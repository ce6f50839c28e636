from __future__ import annotations

import asyncio
import dataclasses

from devamb.control.bus import EventBus
from devamb.control.events import EngineEvent, EventsLost, Notice


async def test_subscribers_get_events_in_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Notice(level="info", message="one"))
    bus.publish(Notice(level="info", message="two"))
    first, second = await sub.get(), await sub.get()
    assert [first.message, second.message] == ["one", "two"]  # type: ignore[union-attr]


async def test_slow_subscriber_loses_oldest_and_is_told_how_many() -> None:
    bus = EventBus()
    sub = bus.subscribe(size=3)
    for i in range(10):
        bus.publish(Notice(level="info", message=str(i)))  # never blocks
    lost = await sub.get()
    assert isinstance(lost, EventsLost) and lost.count == 7
    rest = [(await sub.get()).message for _ in range(3)]  # type: ignore[union-attr]
    assert rest == ["7", "8", "9"]


async def test_close_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    seen: list[str] = []

    async def consume() -> None:
        async for event in sub:
            seen.append(event.message)  # type: ignore[attr-defined]

    task = asyncio.create_task(consume())
    bus.publish(Notice(level="info", message="x"))
    await asyncio.sleep(0)
    bus.close()
    await asyncio.wait_for(task, 1)
    assert seen == ["x"] and not bus.has_subscribers


async def test_the_mask_sees_each_event_once_before_every_subscriber() -> None:
    masked: list[EngineEvent] = []

    def mask(event: EngineEvent) -> EngineEvent:
        masked.append(event)
        return dataclasses.replace(event, message="masked")

    bus = EventBus(mask=mask)
    bus.publish(Notice(level="info", message="nobody listens"))  # no subscriber: not even masked
    first, second = bus.subscribe(), bus.subscribe()
    bus.publish(Notice(level="info", message="secret"))
    assert [e.message for e in masked] == ["secret"]  # type: ignore[attr-defined]
    for sub in (first, second):
        assert (await sub.get()).message == "masked"  # type: ignore[union-attr]


def test_event_wire_shape() -> None:
    data = Notice(level="warning", message="m", time=1.0).to_json()
    assert data == {"type": "notice", "level": "warning", "message": "m", "time": 1.0}
