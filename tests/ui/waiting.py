"""Waiting without sleeping: let the app process messages until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from tests.ui.fake_control import FakeControl
from ui.app import DevambApp

QUICK_ROUNDS = 400
PATIENCE = 30.0  # seconds: a generous bound for a loaded CI machine, not a timing assertion


async def until(pilot: Pilot, condition: Callable[[], bool], what: str = "condition") -> None:
    """Process pending messages until `condition()` is true.

    First many quick rounds (most conditions hold within a few); then, since some updates wait
    on a timer (the traffic list redraws at most every REDRAW_EVERY), short sleeps until a wall
    clock bound that only a real hang reaches.
    """
    for _ in range(QUICK_ROUNDS):
        if condition():
            return
        await pilot.pause()
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def settled(pilot: Pilot, fake: FakeControl | None = None) -> None:
    """The app is connected and has handled every event the fake engine had queued."""
    app = pilot.app
    assert isinstance(app, DevambApp)
    await app.connected.wait()
    if fake is not None:
        await until(pilot, lambda: fake.drained, "the fake engine's events to be read")
    await pilot.pause()
    await pilot.pause()
