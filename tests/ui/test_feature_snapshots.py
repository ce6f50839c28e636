"""Snapshots of the feature screens (faults panel, filter bar with an error, diff view, target
detail) at a fixed size, with fixed data. Update with `--snapshot-update`."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from tests.ui.fake_control import FakeControl, demo_exchanges, exchange, feature_status
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.screens.diff import DiffScreen
from ui.screens.faults import FaultsScreen
from ui.screens.target_detail import TargetDetail

SIZE = (110, 32)


def feature_app():
    fake = FakeControl(feature_status(), history=demo_exchanges(30))
    return make_app(fake, poll_status=False), fake


def test_faults_panel(snap_compare) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        screen = app.screen
        await until(pilot, lambda: screen.query_one("#scenarios-table").row_count == 2)
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_fault_form(snap_compare) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("tab", *"300ms", "tab", "tab", "tab", "tab", "tab", *"1.5")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=(110, 36))


def test_filter_bar_error(snap_compare) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("x", "space", "slash", *"~c 5xx & ~q x", "enter")
        await pilot.pause()
        await until(pilot, lambda: app.main.query_one("FilterBar").has_class("-error"))
        # the cursor blinks on a 0.5 s timer: hold it visible, or a slow machine snaps it hidden
        app.main.query_one("#filter-input", Input).cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_diff_view(snap_compare) -> None:
    app, fake = feature_app()
    fake.replays[30] = {
        "exchange": exchange(131, target="local", status=200, duration_ms=8.1, replay_of=30),
        "diff": [
            {"path": "status", "left": 201, "right": 200, "change": "changed"},
            {"path": "headers.x-ratelimit-remaining", "left": "99", "right": None,
             "change": "removed"},
            {"path": "body.status", "left": "succeeded", "right": "pending", "change": "changed"},
            {"path": "body.items[1].price", "left": 1200, "right": 1250, "change": "changed"},
            {"path": "body.debug", "left": None, "right": {"node": "local-1"}, "change": "added"},
        ],
    }  # fmt: skip

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), "the diff")
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_target_detail_pool(snap_compare) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("t", "down", "down", "i")
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


def test_target_detail_mock(snap_compare) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("down", "t", "down", "down", "i")
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=SIZE)
