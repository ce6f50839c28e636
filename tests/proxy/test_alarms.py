"""proxy/alarms.py: callbacks at loop times, one loop timer for those asked for in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devamb.proxy import alarms
from devamb.proxy.alarms import Alarm, alarm


def _timers(monkeypatch: pytest.MonkeyPatch, loop: asyncio.AbstractEventLoop) -> list[float]:
    """The loop timers made from now on (their times)."""
    made: list[float] = []
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        made.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counted)
    return made


async def test_alarms_in_order_ring_in_order_on_one_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    made = _timers(monkeypatch, loop)
    rang: list[int] = []
    now = loop.time()
    for i in range(5):
        assert isinstance(alarm(loop, now + 0.02 + i * 0.01, lambda i=i: rang.append(i)), Alarm)
    assert len(made) == 1  # one timer, for the first
    await asyncio.sleep(0.15)
    assert rang == [0, 1, 2, 3, 4]
    assert not alarms._alarms.entries  # type: ignore[union-attr]


async def test_a_cancelled_alarm_never_rings_and_leaves_the_queue() -> None:
    loop = asyncio.get_running_loop()
    rang: list[str] = []
    now = loop.time()
    first = alarm(loop, now + 0.02, lambda: rang.append("first"))
    alarm(loop, now + 0.03, lambda: rang.append("second"))
    first.cancel()
    first.cancel()  # (twice: once counted)
    queue = alarms._alarms
    assert queue is not None and len(queue.entries) == 1 and queue.live == 1
    await asyncio.sleep(0.1)
    assert rang == ["second"]
    assert queue.live == 0


async def test_calls_one_at_a_time_make_no_timer_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait bounded per call, cancelled as its call ends (the HTTP/2 relay's headers wait):
    the queue stays short and no loop timer is made per call."""
    loop = asyncio.get_running_loop()
    alarm(loop, loop.time() + 5, lambda: None).cancel()  # (the timer for the first)
    made = _timers(monkeypatch, loop)
    for _ in range(500):
        alarm(loop, loop.time() + 5, lambda: None).cancel()
        await asyncio.sleep(0)
    assert made == []
    assert len(alarms._alarms.entries) <= 1  # type: ignore[union-attr]


async def test_one_before_the_latest_gets_a_timer_of_its_own() -> None:
    loop = asyncio.get_running_loop()
    rang: list[str] = []
    now = loop.time()
    alarm(loop, now + 0.2, lambda: rang.append("late"))
    early = alarm(loop, now + 0.02, lambda: rang.append("early"))
    assert isinstance(early, asyncio.TimerHandle)
    await asyncio.sleep(0.08)
    assert rang == ["early"]
    cancelled = alarm(loop, now + 0.01, lambda: rang.append("never"))
    cancelled.cancel()
    await asyncio.sleep(0.2)
    assert rang == ["early", "late"]


async def test_an_earlier_alarm_after_the_queue_emptied_rings_on_time() -> None:
    """The timer of a cancelled alarm stays; one asked for before that timer's time, once
    the queue is empty, does not wait for it."""
    loop = asyncio.get_running_loop()
    rang: list[float] = []
    alarm(loop, loop.time() + 10, lambda: None).cancel()
    alarm(loop, loop.time() + 0.02, lambda: rang.append(loop.time()))
    await asyncio.sleep(0.2)
    assert len(rang) == 1


async def test_a_long_wait_does_not_keep_the_cancelled_ones_behind_it() -> None:
    loop = asyncio.get_running_loop()
    long = alarm(loop, loop.time() + 10, lambda: None)
    for _ in range(1000):
        alarm(loop, loop.time() + 10, lambda: None).cancel()
    queue = alarms._alarms
    assert queue is not None and len(queue.entries) <= 65
    long.cancel()


async def test_a_failing_callback_is_reported_and_the_others_ring() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    rang: list[str] = []
    now = loop.time()
    alarm(loop, now + 0.02, lambda: 1 / 0)
    alarm(loop, now + 0.02, lambda: rang.append("next"))
    await asyncio.sleep(0.1)
    assert rang == ["next"]
    assert isinstance(reported[0]["exception"], ZeroDivisionError)


def test_each_loop_has_its_own() -> None:
    """Tests start loop after loop: an alarm belongs to the loop it was asked on."""
    for _ in range(2):
        rang: list[int] = []

        async def main(rang: list[int] = rang) -> None:
            loop = asyncio.get_running_loop()
            alarm(loop, loop.time() + 0.01, lambda: rang.append(1))
            await asyncio.sleep(0.05)

        asyncio.run(main())
        assert rang == [1]
