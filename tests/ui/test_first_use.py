"""What a first-time user tripped over (issue 20): the fault form's first look and its
placeholders, durations written back as typed, `? Help` and the path at 80 columns."""

from __future__ import annotations

import re

from rich.cells import cell_len
from textual.widgets import DataTable, Input, Select, Static
from textual.widgets._footer import FooterKey

from devamb.profile.units import format_size
from tests.conftest import EngineFactory
from tests.ui.test_features import SIZE, feature_app, open_faults, text_of
from tests.ui.test_snapshots import demo_app
from tests.ui.waiting import settled, until
from tests.upstreams import HttpUpstream
from ui.app import make_app
from ui.screens.fault_form import COMMON_FIELDS, H2_FIELDS, KIND_FIELDS, FaultForm
from ui.screens.faults import FaultsScreen, settings_text
from ui.widgets import traffic_columns
from ui.widgets.keys_footer import KeysFooter


async def open_form(pilot) -> FaultForm:
    """`a` on the faults screen: the form, once mounted (it focuses the kind then)."""
    await pilot.press("a")
    await until(pilot, lambda: isinstance(pilot.app.screen, FaultForm), "the form")
    form = pilot.app.screen
    assert isinstance(form, FaultForm)
    await until(pilot, lambda: form.query_one("#form-kind").has_focus, "the form's first focus")
    return form


async def test_the_form_says_what_is_required_before_it_calls_anything_an_error() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await open_faults(pilot)
        form = await open_form(pilot)
        status = form.query_one("#form-error", Static)
        assert text_of(status) == "Fill in delay (required)"
        form.query_one("#form-kind", Select).value = "abort"
        await until(pilot, lambda: "valid" in text_of(status), "abort needs nothing")
        form.query_one("#form-kind", Select).value = "bandwidth"
        await until(pilot, lambda: text_of(status) == "Fill in rate (required)", "the rate hint")
        form.query_one("#field-probability", Input).focus()
        await pilot.press(*"0.5")
        await pilot.pause()
        assert text_of(status) == "Fill in rate (required)"  # typing elsewhere: still a hint
        await pilot.press("enter")  # submitted without it: now the engine's error
        await until(pilot, lambda: "missing required key 'rate'" in text_of(status), "the error")
        assert isinstance(app.screen, FaultForm)


def test_placeholders_read_as_hints_not_values() -> None:
    hints = [hint for fields in (*KIND_FIELDS.values(), *H2_FIELDS.values()) for _, hint in fields]
    hints += [hint for _, hint in COMMON_FIELDS]
    for hint in hints:
        assert re.match(r"^(required|default)\b", hint), hint


def test_settings_are_written_the_way_they_are_typed() -> None:
    fault = {"params": {"delay": 0.2, "jitter": 0.05, "distribution": "uniform"}, "for": 90.0}
    assert settings_text(fault) == "delay=200ms jitter=50ms distribution=uniform · for=90s"
    assert settings_text({"params": {"rate": 262144}}) == "rate=256KiB/s"
    assert settings_text({"params": {"size": 64, "delay": 0.01}}) == "size=64 delay=10ms"
    assert settings_text({"params": {"timeout": 2.5}}) == "timeout=2.5s"
    assert [format_size(n) for n in (512, 1024, 1536, 3 * 1024**2)] == [
        "512", "1KiB", "1536", "3MiB",
    ]  # fmt: skip


PROFILE = """
version: 1
name: firstuse
services:
  api:
    listen: 0
    target: a
    targets:
      a: {a}
"""


async def test_200ms_comes_back_as_200ms_from_the_real_engine(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url))
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        table = app.screen.query_one("#faults-table", DataTable)
        form = await open_form(pilot)
        form.query_one("#field-latency-delay", Input).focus()
        await pilot.press(*"200ms")
        form.query_one("#field-latency-jitter", Input).focus()
        await pilot.press(*"50ms", "enter")
        await until(pilot, lambda: table.row_count == 1, "the new fault")
        assert engine.services["api"].faults.get("latency").spec.params.delay == 0.2
        settings = str(table.get_cell("latency", "settings"))
        assert settings.startswith("delay=200ms jitter=50ms"), settings


def test_the_path_keeps_room_at_80_columns() -> None:
    narrow, wide = traffic_columns.widths(78), traffic_columns.widths(158)
    labels = [label for label, _, _ in traffic_columns.COLUMNS]
    assert narrow[labels.index("Path")] == 25  # was 14
    assert narrow[labels.index("Size")] is None and narrow[labels.index("Time")] == 8
    assert wide[labels.index("Path")] == 94 and wide[labels.index("Size")] == 6
    cells = traffic_columns.exchange_cells(demo_app()[1].history[-1])
    for total in (78, 158):
        fitted = traffic_columns.fit(cells, total)
        assert sum(cell_len(text) for text, _ in fitted) == total
    time_text = traffic_columns.fit(cells, 78)[0][0]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", time_text), time_text  # clipped, no ellipsis


async def test_help_is_in_the_footer_at_80_columns() -> None:
    app, fake = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, fake)
        for tab in ("d", "x"):
            await pilot.press(tab)
            await pilot.pause()
            footer = app.screen.query_one(KeysFooter)
            help_key = next(key for key in footer.query(FooterKey) if key.action == "help")
            assert help_key.description == "Help"
            assert help_key.region.right <= 80 and help_key.region.width > 0
