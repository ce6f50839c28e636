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
