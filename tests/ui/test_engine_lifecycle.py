"""Connecting, losing the engine, restarting it, quitting — and never a traceback."""

from __future__ import annotations

from textual.message import Message

from tests.ui.fake_control import T0, FakeControl, demo_exchanges, stats
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.messages import EngineLost, StatsUpdated
from ui.screens.engine_died import EngineDied
from ui.screens.help import HelpScreen
from ui.screens.main import MainScreen
from ui.widgets.events_log import EventsLog
from ui.widgets.services_table import ServicesTable

SIZE = (100, 30)


def events_text(app) -> str:
    return "\n".join(strip.text for strip in app.main.query_one(EventsLog).lines)


async def test_engine_death_offers_restart_and_reconnects(fake: FakeControl) -> None:
    replacement = FakeControl(history=demo_exchanges(3))
    restarts: list[int] = []

    async def restart() -> FakeControl:
        restarts.append(1)
        return replacement

    messages: list[Message] = []
    app = make_app(fake, poll_status=False, restart=restart)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, fake)
        fake.die("engine process exited (code -9)")
        await until(pilot, lambda: isinstance(app.screen, EngineDied), "the engine-died screen")
        lost = [m for m in messages if isinstance(m, EngineLost)]
        assert [m.reason for m in lost] == ["engine process exited (code -9)"]
        assert "engine process exited" in events_text(app)
        await pilot.press("r")
        await until(pilot, lambda: app.control is replacement and app.connected.is_set(), "restart")
        assert restarts == [1]
        assert isinstance(app.screen, MainScreen)
        await pilot.press("t", "3")
        await until(pilot, lambda: replacement.switches == [("payments", "debug")], "switch")


async def test_without_restart_the_dialog_only_offers_quit(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        fake.die()
        await until(pilot, lambda: isinstance(app.screen, EngineDied), "the engine-died screen")
        assert not app.screen.query("#restart")
        await pilot.press("r")  # not offered: nothing happens
        assert isinstance(app.screen, EngineDied)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "exit")


async def test_an_engine_that_never_answers_is_reported() -> None:
    fake = FakeControl()
    fake.dead = True
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EngineDied), "the engine-died screen")
        assert "no engine is running" in app.screen.reason


async def test_quit_stops_the_engine_only_when_the_tui_owns_it() -> None:
    owned = FakeControl()
    app = make_app(owned, owns_engine=True, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, owned)
        await pilot.press("q")
        await until(pilot, lambda: owned.shutdown_called, "shutdown")
    attached = FakeControl()
    app = make_app(attached, owns_engine=False, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, attached)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "exit")
    assert not attached.shutdown_called
    assert not attached.dead


async def test_stats_update_cells_in_place_and_keep_the_cursor(fake: FakeControl) -> None:
    messages: list[Message] = []
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, fake)
        table = app.main.query_one(ServicesTable)
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        for index in range(10):
            services = {"payments": stats(1000 + index, 2.0, 9.0), "cache": stats(3.0, 0.2, 0.9)}
            fake.push({"type": "stats", "time": T0 + index, "services": services})
        await settled(pilot, fake)
        assert table.cursor_row == 2
        assert str(table.get_cell("payments", "rate")) == "1.0k"
        assert str(table.get_cell("cache", "p99")) == "0.9ms"
        assert app.trends.rate("payments")[-10:] == [1000.0 + i for i in range(10)]
        updates = [m for m in messages if isinstance(m, StatsUpdated)]
        assert 1 <= len(updates) <= 10


async def test_notices_go_to_the_events_pane_and_errors_notify(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        fake.push(
            {"type": "notice", "time": T0, "level": "info", "message": "profile reloaded"},
            {
                "type": "notice",
                "time": T0,
                "level": "error",
                "message": "devamb.yaml:14:7: services.payments.target: 'stagin' is unknown",
            },
            {"type": "lost", "time": T0, "count": 12},
        )
        await settled(pilot, fake)
        text = events_text(app)
        assert "profile reloaded" in text
        assert "devamb.yaml:14:7" in text
        assert "skipped 12 events" in text
        assert "Traceback" not in text
        assert any("devamb.yaml:14:7" in str(n.message) for n in app._notifications)


async def test_help_and_theme(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert app.current_theme.dark
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark


async def test_small_terminal_still_shows_every_service(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot, fake)
        table = app.main.query_one(ServicesTable)
        assert table.row_count == 3
        assert table.region.height >= 5  # header + three rows + border
        assert table.virtual_size.width <= table.scrollable_content_region.width  # no h-scroll


async def test_fault_changes_show_in_the_table_and_the_events(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        table = app.main.query_one(ServicesTable)
        assert str(table.get_cell("search", "faults")) == "—"
        faults = [{"name": "flaky", "kind": "abort", "enabled": True, "probability": 0.1}]
        fake.push({"type": "faults", "time": T0, "service": "search", "faults": faults})
        await until(pilot, lambda: "flaky" in str(table.get_cell("search", "faults")), "table")
        assert "search: flaky on" in events_text(app)


async def test_a_reloaded_profile_shows_its_new_services(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        table = app.main.query_one(ServicesTable)
        await pilot.press("down")  # the cursor is on "search"
        fake._status["services"].append({**fake._status["services"][1], "name": "mail"})
        fake.push({"type": "reloaded", "time": T0, "added": ["mail"], "removed": [], "changed": []})
        await until(pilot, lambda: table.row_count == 4, "the new service")
        assert table.selected_service == "search"


async def test_a_rejected_profile_lists_each_problem_on_its_own_line(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        message = (
            "profile change rejected; the previous configuration keeps serving:\n"
            "devamb.yaml:4:13: services.api.listen: not a port\n"
            "devamb.yaml:9:7: services.api.target: 'stagin' is not one of local, staging"
        )
        fake.push({"type": "notice", "time": T0, "level": "error", "message": message})
        await settled(pilot, fake)
        lines = events_text(app).splitlines()
        assert any(line.strip().startswith("devamb.yaml:4:13:") for line in lines)
        assert any(line.strip().startswith("devamb.yaml:9:7:") for line in lines)


async def test_attaching_to_an_engine_already_running_says_quitting_leaves_it(
    fake: FakeControl,
) -> None:
    app = make_app(fake, poll_status=False, announce_attach=True)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await until(pilot, lambda: "already running" in events_text(app), "the attach notice")
        assert "quitting leaves it running" in events_text(app)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "exit")
    assert not fake.shutdown_called  # not ours to stop
