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
