"""The TUI on the real in-process engine: keys switch real listeners, real traffic shows up."""

from __future__ import annotations

import aiohttp

from tests.conftest import EngineFactory, listen_url
from tests.ui.waiting import settled, until
from tests.upstreams import HttpUpstream
from ui.app import make_app
from ui.screens.engine_died import EngineDied
from ui.screens.exchange_detail import ExchangeDetail
from ui.widgets.services_table import ServicesTable
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
      b: {b}
      debug: echo
"""
SIZE = (100, 30)


async def served_by(url: str) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/who") as response:
        assert response.status == 200
        return (await response.json())["upstream"]


async def test_keys_switch_the_real_listener(
    make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url, b=upstream2.url))
    url = listen_url(engine, "api")
    assert await served_by(url) == "up"
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("t")
        await pilot.press("2")  # how fast is measured by bench/extra.py tui, not asserted here
        await until(pilot, lambda: engine.services["api"].active == "b", "the engine to switch")
        assert await served_by(url) == "up2"
        table = app.main.query_one(ServicesTable)
        await until(pilot, lambda: str(table.get_cell("api", "target")) == "b", "the table")


async def test_palette_switches_the_real_listener(
    make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url, b=upstream2.url))
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("ctrl+p", *"switch api b")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: engine.services["api"].active == "b", "the engine to switch")
        assert await served_by(listen_url(engine, "api")) == "up2"


async def test_real_traffic_appears_and_opens(
    make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url, b=upstream2.url))
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)
        for _ in range(3):
            await served_by(listen_url(engine, "api"))
        await until(pilot, lambda: len(traffic.rows) == 3, "three exchanges in the list")
        assert [row["path"] for row in traffic.rows] == ["/who"] * 3
        assert {row["target"] for row in traffic.rows} == {"a"}
        await until(pilot, lambda: app.trends.rate("api") != [], "a stats tick")
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        assert detail.exchange["status"] == 200
        await until(pilot, lambda: "request_headers" in detail.exchange, "the full record")
        await pilot.pause()
        titles = [section.border_title for section in detail.query(".detail-section")]
        assert "Response headers" in titles
        assert any(title.startswith("Response body (application/json") for title in titles)


async def test_stopping_the_engine_shows_the_engine_died_screen(
    make_engine: EngineFactory, upstream: HttpUpstream, upstream2: HttpUpstream
) -> None:
    engine = await make_engine(PROFILE.format(a=upstream.url, b=upstream2.url))
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await engine.stop()
        await until(pilot, lambda: isinstance(app.screen, EngineDied), "the engine-died screen")
