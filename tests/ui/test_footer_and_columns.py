"""Two layout bugs, at the widths that showed them: the footer's `^p palette` (docked right)
drew over the last key bindings (at 110 columns on the traffic tab: `i Targe▏^p palette`), and
the traffic header was laid out one column wider than the list whenever the list scrolled (its
scrollbar's column), so at 96 columns the header kept the time's milliseconds while the rows
dropped them and the Service values ran under the Time title."""

from __future__ import annotations

import pytest
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tests.ui.fake_control import demo_exchanges
from tests.ui.test_snapshots import demo_app, settle
from ui.widgets.traffic_list import TrafficList
from ui.widgets.traffic_pane import TrafficHeader


def test_traffic_footer_110x30(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["x"], terminal_size=(110, 30))


def test_traffic_columns_96x30(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["x"], terminal_size=(96, 30))


@pytest.mark.parametrize("width", [80, 96, 100, 110, 118, 130])
@pytest.mark.parametrize("rows", [3, 40])  # without and with a scrollbar
async def test_no_key_under_the_palette_and_one_width_for_header_and_rows(
    width: int, rows: int
) -> None:
    app, fake = demo_app(history=demo_exchanges(rows))
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(fake)(pilot)
        for press in ("", "x"):  # the dashboard's keys, then the traffic tab's (more of them)
            if press:
                await pilot.press(press)
            await pilot.pause(0.2)
            footer = app.screen.query_one(Footer)
            keys = list(footer.query(FooterKey))
            [palette] = [k for k in keys if k.has_class("-command-palette")]
            shown = [k for k in keys if k is not palette and k.visible]
            assert shown and shown[0].key == "question_mark"  # `? Help` always in view
            assert all(k.region.right <= palette.region.x for k in shown)
        header = app.screen.query_one(TrafficHeader)
        listing = app.screen.query_one(TrafficList)
        assert header.content_region.x == listing.content_region.x
        assert header.content_region.width == listing.scrollable_content_region.width
