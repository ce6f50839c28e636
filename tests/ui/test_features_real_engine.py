"""The faults panel, the filter bar and replay-and-diff on the real in-process engine."""

from __future__ import annotations

import aiohttp
from textual.widgets import DataTable, Input, Static

from tests.conftest import EngineFactory, listen_url
from tests.ui.test_features import text_of
from tests.ui.waiting import settled, until
from tests.upstreams import HttpUpstream
from ui.app import make_app
from ui.screens.diff import DiffScreen
from ui.screens.exchange_actions import ExchangeScreen
from ui.screens.fault_form import FaultForm
from ui.screens.faults import FaultsScreen
from ui.widgets.filter_bar import FilterBar
from ui.widgets.traffic_list import TrafficList

PROFILE = """
version: 1
name: uitest
services:
  api:
    listen: 0
    target: a
    targets:
      a: {a}
      debug: echo
    faults:
      slow: {{kind: latency, delay: 1ms}}
scenarios:
  outage:
    steps:
      - {{at: 0s, service: api, add: {{name: boom, kind: abort, status: 502}}}}
      - {{at: 60s, service: api, clear: true}}
"""
SIZE = (110, 34)


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        await response.read()
        return response.status


async def test_faults_panel_drives_the_real_engine(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url))
    url = listen_url(engine, "api")
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        screen = app.screen
        table = screen.query_one("#faults-table", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the profile's fault")
        assert await get(f"{url}/x") == 200
        await until(pilot, lambda: str(table.get_cell("slow", "fired")) == "1/1", "fired count")
        await pilot.press("space")
        await until(pilot, lambda: not engine.services["api"].faults.get("slow").enabled)
        await until(pilot, lambda: str(table.get_cell("slow", "on")) == "○ off", "the switch")

        # add: an abort 503, checked as typed, then added by the engine
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        form = app.screen
        await pilot.press("enter", "down", "enter")  # kind: latency -> abort
        await pilot.pause()
        form.query_one("#field-abort-status", Input).focus()
        await pilot.press(*"503")
        form.query_one("#field-name", Input).focus()
        await pilot.press(*"nope", "enter")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the form to close")
        await until(pilot, lambda: table.row_count == 2, "the new fault")
        assert await get(f"{url}/x") == 503
        await until(pilot, lambda: str(table.get_cell("nope", "fired")) == "1/1")

        # remove it, then clear; the scenario starts from the panel
        table.move_cursor(row=table.get_row_index("nope"))  # the engine lists faults by kind
        await pilot.press("delete")
        await until(pilot, lambda: engine.services["api"].faults.get("nope") is None)
        assert await get(f"{url}/x") == 200
        scenarios = screen.query_one("#scenarios-table", DataTable)
        scenarios.focus()
        await pilot.press("s")
        await until(pilot, lambda: "running" in str(scenarios.get_cell("outage", "state")))
        await until(pilot, lambda: table.row_count == 2, "the scenario's fault")
        assert await get(f"{url}/x") == 502
        await pilot.press("s")
        await until(pilot, lambda: "stopped" in str(scenarios.get_cell("outage", "state")))
        table.focus()
        await pilot.press("c")
        await until(pilot, lambda: table.row_count == 0, "clear")
        assert engine.services["api"].faults.names() == []


async def test_form_shows_the_real_engines_error(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url))
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        form = app.screen
        await pilot.press("ctrl+s")  # latency without a delay: the engine says what is missing
        error = form.query_one("#form-error", Static)
        await until(pilot, lambda: "missing required key 'delay'" in text_of(error))
        assert isinstance(app.screen, FaultForm)


async def test_filter_bar_on_the_real_engine(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url))
    url = listen_url(engine, "api")
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)
        for path in ("/one", "/status/503", "/two", "/status/503"):
            await get(url + path)
        await until(pilot, lambda: len(traffic.rows) == 4, "four exchanges")
        await pilot.press("slash", *"~c 5xx & (", "enter")
        bar = app.main.query_one(FilterBar)
        message = bar.query_one("#filter-message", Static)
        await until(pilot, lambda: "bad filter" in text_of(message), "the engine's error")
        lines = text_of(message).rstrip("\n").splitlines()
        assert lines[-1].rstrip().endswith("^")
        assert len(traffic.rows) == 4
        await pilot.press("backspace", "backspace", "backspace", "enter")
        await until(pilot, lambda: len(traffic.rows) == 2, "the matches")
        assert {row["status"] for row in traffic.rows} == {503}
        await get(url + "/status/503")
        await get(url + "/three")
        await until(pilot, lambda: len(traffic.rows) == 3, "the new match, not the other")
        await pilot.press("escape", "c")
        await until(pilot, lambda: engine.store.all() == [], "the engine's record cleared")


async def test_replay_and_diff_on_the_real_engine(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url))
    url = listen_url(engine, "api")
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)
        await get(url + "/who")
        await until(pilot, lambda: len(traffic.rows) == 1, "the exchange")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        await pilot.press("r")
        await until(pilot, lambda: len(engine.store.all()) == 2, "the replay")
        assert engine.store.all()[-1].replay_of == engine.store.all()[0].id
        await pilot.press("d", "enter")  # the only other target: debug (echo)
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), "the diff")
        diff = app.screen
        assert diff.replay["target"] == "debug"
        assert any(d["path"].startswith("body") for d in diff.differences)
