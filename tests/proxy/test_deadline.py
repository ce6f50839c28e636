"""Deadline behaves as asyncio.timeout: its own cancellation becomes TimeoutError, others pass."""

from __future__ import annotations

import asyncio

import pytest

from devamb.proxy.deadline import Deadline


async def test_time_up_is_a_timeout_error_and_the_task_goes_on() -> None:
    with pytest.raises(TimeoutError), Deadline(0.05):
        await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # no cancellation left pending


async def test_in_time_nothing_happens_later() -> None:
    with Deadline(0.05):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # past the deadline: a timer left behind would cancel this


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def guarded() -> None:
        with Deadline(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_inner_one_fires_first() -> None:
    with Deadline(5):
        with pytest.raises(TimeoutError), Deadline(0.02):
            await asyncio.sleep(5)
        await asyncio.sleep(0.01)


async def test_rearm_later_keeps_a_moving_task_alive() -> None:
    with Deadline(0.1) as deadline:
        for _ in range(6):  # 0.3 s in all, never 0.1 s without a re-arm
            await asyncio.sleep(0.03)
            deadline.rearm(0.1)
    await asyncio.sleep(0.15)  # past every deadline: nothing fires after the block


async def test_rearm_sooner_fires_sooner() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), Deadline(30) as deadline:
        deadline.rearm(0.02)
        await asyncio.sleep(30)
    assert loop.time() - started < 10


# Deadlines of one duration share a queue and one timer (deadline.py `DueQueue`): each still
# fires at its own time, whatever ended before it.


async def _waits(seconds: float, pause: float) -> str:
    """'timeout' if a `seconds` deadline fired during a `pause`, else 'done'."""
    try:
        with Deadline(seconds):
            await asyncio.sleep(pause)
    except TimeoutError:
        return "timeout"
    return "done"


async def test_a_queue_of_one_duration_fires_each_at_its_own_time() -> None:
    first = asyncio.create_task(_waits(0.5, 0.01))  # the head ends early
    await asyncio.sleep(0.05)
    second = asyncio.create_task(_waits(0.5, 5))  # queued behind it: fires at ~0.55 s
    third = asyncio.create_task(_waits(0.5, 2))  # fires too
    fourth = asyncio.create_task(_waits(0.5, 0.02))  # ends in time
    assert await asyncio.gather(first, second, third, fourth) == [
        "done", "timeout", "timeout", "done"]


async def test_a_slow_head_does_not_make_ended_deadlines_pile_up() -> None:
    from devamb.proxy import deadline as module

    slow = asyncio.create_task(_waits(30, 1))
    await asyncio.sleep(0)
    for _ in range(1000):
        with Deadline(30):
            pass
    queue = module._queues[30]
    assert len(queue.entries) < 300 and queue.live == 1
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert not queue.entries  # nothing held: the queue's timer finds it empty and stops


async def test_a_rearmed_deadline_leaves_the_queue_for_its_own_timer() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    queued = asyncio.create_task(_waits(30, 0.05))  # the queue's head, due in 30 s
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError), Deadline(30) as deadline:
        deadline.rearm(0.02)  # sooner than the queue's head: only its own timer can do it
        await asyncio.sleep(30)
    assert loop.time() - started < 10
    assert await queued == "done"
