"""Pilot tests of the faults panel, filter bar, exchange actions, target detail, logs and the
record key, against the fake engine."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from rich.text import Text
from textual.widgets import DataTable, Input, Log, Select, Static

from tests.ui.fake_control import FakeControl, demo_exchanges, exchange, feature_status
from tests.ui.waiting import settled, until
from ui.app import DevambApp, make_app
from ui.screens.diff import DiffScreen
from ui.screens.exchange_actions import ExchangeScreen, ExportScreen
from ui.screens.fault_form import FaultForm, fault_data, typed
from ui.screens.faults import FaultsScreen, settings_text
from ui.screens.logs import LogsScreen
from ui.screens.target_detail import TargetDetail
from ui.widgets.filter_bar import FilterBar
from ui.widgets.services_table import ServicesTable
from ui.widgets.traffic_list import TrafficList

SIZE = (110, 34)


def feature_app(history=None) -> tuple[DevambApp, FakeControl]:
    history = history if history is not None else demo_exchanges(30)
    fake = FakeControl(feature_status(), history=history)
    return make_app(fake, poll_status=False), fake


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text (rich renderables rendered at a fixed width)."""
    content = widget.content
    if isinstance(content, str | Text):
        return str(content)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


async def open_faults(pilot) -> FaultsScreen:
    await pilot.press("f")
    await until(pilot, lambda: isinstance(pilot.app.screen, FaultsScreen), "the faults screen")
    screen = pilot.app.screen
    assert isinstance(screen, FaultsScreen)
    await until(pilot, lambda: len(screen.faults) == 2, "the faults")
    return screen


# -- faults ------------------------------------------------------------------------------------


def test_fault_form_values() -> None:
    assert typed("0.5") == 0.5 and typed("503") == 503 and typed("300ms") == "300ms"
    data = fault_data("latency", {"delay": "300ms", "jitter": "", "probability": "0.2",
                                  "path": "/charge*", "method": "post, put", "name": ""})
    assert data == {"kind": "latency", "delay": "300ms", "probability": 0.2,
                    "match": {"path": "/charge*", "method": ["POST", "PUT"]}}
    shown = settings_text({"params": {"status": 503, "body": ""}, "times": 3})
    assert shown == "status=503 · times=3"


async def test_faults_panel_toggles_removes_and_clears() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        screen = await open_faults(pilot)
        table = screen.query_one("#faults-table", DataTable)
        assert str(table.get_cell("slow", "on")) == "● on"
        assert str(table.get_cell("slow", "fired")) == "12/25"
        await pilot.press("space")
        await until(pilot, lambda: ("set_fault", "payments", "slow", False) in fake.calls)
        await until(pilot, lambda: str(table.get_cell("slow", "on")) == "○ off", "the switch")
        # the dashboard marker follows the "faults" event
        services = app.main.query_one(ServicesTable)
        await until(pilot, lambda: "slow" not in str(services.get_cell("payments", "faults")))
        await pilot.press("down", "delete")
        await until(pilot, lambda: ("remove_fault", "payments", "flaky") in fake.calls)
        await until(pilot, lambda: [f["name"] for f in screen.faults] == ["slow"], "removal")
        await pilot.press("c")
        await until(pilot, lambda: screen.faults == [], "clear")
        assert ("clear_faults", "payments") in fake.calls
        await pilot.press("escape")
        assert not isinstance(app.screen, FaultsScreen)


async def test_faults_panel_add_form_validates_and_shows_the_engines_error() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        screen = await open_faults(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        form = app.screen
        assert isinstance(form, FaultForm)
        error = form.query_one("#form-error", Static)
        # as typed: the engine's own rules (latency needs a delay)
        assert "delay" in text_of(error)
        form.query_one("#field-latency-delay", Input).focus()
        await pilot.press(*"250ms")
        await until(pilot, lambda: "valid" in text_of(error), "the form to be valid")
        form.query_one("#field-probability", Input).focus()
        await pilot.press(*"2")
        await until(pilot, lambda: "out of range" in text_of(error), "the range error")
        # submitted anyway: the engine refuses and its message is shown inline
        await pilot.press("enter")
        await until(pilot, lambda: "0..1" in text_of(error), "the engine's error")
        assert isinstance(app.screen, FaultForm)
        await pilot.press("backspace", *"0.25", "enter")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the form to close")
        await until(pilot, lambda: len(screen.faults) == 3, "the new fault in the list")
        added = fake.calls[-1]
        assert added[0] == "add_fault"
        assert added[2] == {"kind": "latency", "delay": "250ms", "probability": 0.25}


async def test_faults_panel_switches_kind_fields_and_starts_scenarios() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        screen = await open_faults(pilot)
        scenarios = screen.query_one("#scenarios-table", DataTable)
        await until(pilot, lambda: scenarios.row_count == 2, "the scenarios")
        assert str(scenarios.get_cell("outage", "progress")) == "step 2/4"
        scenarios.focus()
        await pilot.press("down", "s")
        await until(pilot, lambda: ("start_scenario", "brownout") in fake.calls)
        await until(pilot, lambda: "running" in str(scenarios.get_cell("brownout", "state")))
        await pilot.press("s")
        await until(pilot, lambda: ("stop_scenario", "brownout") in fake.calls)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        form = app.screen
        form.query_one("#form-kind", Select).value = "abort"
        await pilot.pause()
        assert form.query_one("#field-abort-status").parent.display
        assert not form.query_one("#field-latency-delay").parent.display
        assert "valid" in text_of(form.query_one("#form-error", Static))


# -- the traffic filter, clearing, exchange actions ------------------------------------------


async def test_filter_bar_applies_the_engines_filter_and_shows_its_error() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "slash")
        bar = app.main.query_one(FilterBar)
        assert bar.display and bar.input.has_focus
        await pilot.press(*"~c 5xx & ~q x", "enter")
        message = bar.query_one("#filter-message", Static)
        await until(pilot, lambda: "^" in text_of(message), "the caret")
        lines = text_of(message).splitlines()
        assert lines[-2].strip() == "~c 5xx & ~q x"
        assert lines[-1].index("^") == lines[-2].index("~q")  # under the offending column
        traffic = app.main.query_one(TrafficList)
        assert len(traffic.rows) == 30  # a bad filter changes nothing
        await pilot.press(*["backspace"] * 7, "enter")
        await until(pilot, lambda: app.traffic_filter == "~c 5xx", "the filter")
        await until(pilot, lambda: len(traffic.rows) == 6, "the matching rows")
        assert {row["status"] for row in traffic.rows} == {503}
        # new traffic: the engine is asked again
        fake.history.append(exchange(99, status=502))
        fake.push({"type": "exchange", "time": 0, "exchange": exchange(99, status=502)})
        await until(pilot, lambda: len(traffic.rows) == 7, "the new match")
        await pilot.press("escape")
        assert not bar.display and traffic.has_focus
        # an empty expression turns it off
        await pilot.press("slash", *["backspace"] * 10, "enter")
        await until(pilot, lambda: app.traffic_filter == "" and len(traffic.rows) == 31)


async def test_clear_asks_the_engine_too() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "c")
        await until(pilot, lambda: ("clear_exchanges",) in fake.calls)
        assert fake.history == []


async def test_replay_and_diff_from_the_detail() -> None:
    app, fake = feature_app()
    fake.replays[30] = {
        "exchange": exchange(131, target="debug", status=200, replay_of=30),
        "diff": [
            {"path": "status", "left": 201, "right": 200, "change": "changed"},
            {"path": "body.id", "left": "ch_1", "right": None, "change": "removed"},
        ],
    }
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        await pilot.press("r")
        await until(pilot, lambda: ("replay", 30, None, False) in fake.calls)
        await pilot.press("d")
        await pilot.pause()
        options = app.screen.query_one("#choose-options")
        assert options.option_count == 4  # local, debug, pool, box: not staging, its own
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), "the diff")
        assert fake.calls[-1] == ("replay", 30, "local", True)
        diff = app.screen
        assert isinstance(diff, DiffScreen) and len(diff.differences) == 2
        assert diff.query_one(".diff-section").border_title == "2 differences"


async def test_export_curl_and_har(tmp_path: Path) -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "the export screen")
        area = app.screen.query_one("#export-curl")
        await until(pilot, lambda: area.text.startswith("curl -X"), "the curl command")
        field = app.screen.query_one("#export-har-path", Input)
        field.value = str(tmp_path / "out.har")
        await pilot.press("enter")
        await until(pilot, lambda: (tmp_path / "out.har").exists(), "the HAR file")
        assert '"version": "1.2"' in (tmp_path / "out.har").read_text()


# -- target detail, logs, recording ------------------------------------------------------------


async def test_target_detail_for_a_pool_from_the_picker() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("t", "down", "down", "i")  # staging -> debug -> pool
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        screen = app.screen
        assert screen.target_name == "pool"
        titles = [s.border_title for s in screen.query(".detail-section")]
        assert titles[:2] == ["Target", "Endpoints"]
        body = text_of(screen.query(".detail-section")[1])
        assert "ejected" in body and "connection refused" in body


async def test_target_detail_of_the_active_target_and_docker_logs() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        assert app.screen.target_name == "staging"
        await pilot.press("l")  # not a docker target: nothing
        assert isinstance(app.screen, TargetDetail)
        await pilot.press("escape", "t", *["down"] * 3, "i")
        await until(pilot, lambda: getattr(app.screen, "target_name", "") == "box")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs")
        logs = app.screen
        log = logs.query_one(Log)
        await until(pilot, lambda: log.line_count >= 2, "the log lines")
        workers = [w for w in app.workers if w.group == "logs"]
        assert len(workers) == 1 and not workers[0].is_finished
        await pilot.press("escape")
        await until(pilot, lambda: workers[0].is_finished, "the tail to stop")


async def test_record_key_toggles_recording_and_shows_rec() -> None:
    app, fake = feature_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        table = app.main.query_one(ServicesTable)
        await pilot.press("R")
        await until(pilot, lambda: ("start_recording", "payments") in fake.calls)
        await until(pilot, lambda: "REC" in str(table.get_cell("payments", "service")))
        await pilot.press("R")
        await until(pilot, lambda: ("stop_recording", "payments") in fake.calls)
        await until(pilot, lambda: "REC" not in str(table.get_cell("payments", "service")))
        assert any("payments.yaml" in str(n.message) for n in app._notifications)


async def test_tcp_exchanges_offer_no_replay() -> None:
    tcp = exchange(31, service="cache", target="local", protocol="tcp", status=None)
    app, fake = feature_app([*demo_exchanges(30), tcp])
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        keys = set(app.active_bindings)
        assert "e" in keys and "r" not in keys and "d" not in keys
        await pilot.press("r", "d")
        assert not any(call[0] == "replay" for call in fake.calls)
