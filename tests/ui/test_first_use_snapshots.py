"""The first look at 80x24 and 160x48 (issue 20): the fault form before anything is typed, the
faults panel's settings as typed, `? Help` in the footer, the traffic list's path column.
Update with `--snapshot-update` and look at each new SVG."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from tests.ui.test_feature_snapshots import feature_app
from tests.ui.test_snapshots import demo_app, settle
from tests.ui.waiting import settled, until
from ui.screens.fault_form import FaultForm
from ui.screens.faults import FaultsScreen

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


@SIZES
def test_fault_form_untouched(snap_compare, size: tuple[int, int]) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        await until(pilot, lambda: app.screen.query_one("#scenarios-table").row_count == 2)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=size)


@SIZES
def test_faults_panel(snap_compare, size: tuple[int, int]) -> None:
    app, fake = feature_app()

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        await until(pilot, lambda: app.screen.query_one("#scenarios-table").row_count == 2)
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=size)


@SIZES
def test_dashboard(snap_compare, size: tuple[int, int]) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), terminal_size=size)


@SIZES
def test_traffic_list(snap_compare, size: tuple[int, int]) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["x"], terminal_size=size)
