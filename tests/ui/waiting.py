"""Waiting without sleeping: let the app process messages until a condition holds."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from tests.ui.fake_control import FakeControl
from ui.app import DevambApp

ROUNDS = 400


async def until(pilot: Pilot, condition: Callable[[], bool], what: str = "condition") -> None:
    """Process pending messages until `condition()` is true (fails after many idle rounds)."""
    for _ in range(ROUNDS):
        if condition():
            return
        await pilot.pause()
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
