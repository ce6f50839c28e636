"""Switching targets from the TUI: keys, picker, command palette — against the fake engine."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import OptionList

from tests.ui.fake_control import FakeControl
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.messages import SwitchCompleted, SwitchRequested, TargetSwitched
from ui.screens.main import MainScreen
from ui.screens.target_picker import TargetPicker
from ui.widgets.services_table import ServicesTable

SIZE = (100, 30)


def target_cell(app, service: str) -> str:
    table = app.main.query_one(ServicesTable)
    return str(table.get_cell(service, "target"))


async def test_t_then_digit_switches_the_selected_service(fake: FakeControl) -> None:
    messages: list[Message] = []
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, fake)
        await pilot.press("t")
        assert isinstance(app.screen, TargetPicker)
        await pilot.press("3")  # payments: 1 local, 2 staging, 3 debug
        await until(pilot, lambda: fake.switches == [("payments", "debug")], "the switch")
        await until(pilot, lambda: target_cell(app, "payments") == "debug", "the table")
        assert isinstance(app.screen, MainScreen)
    requested = [m for m in messages if isinstance(m, SwitchRequested)]
    assert [(m.service, m.target) for m in requested] == [("payments", "debug")]
    completed = [m for m in messages if isinstance(m, SwitchCompleted)]
    assert [(m.service, m.target, m.error) for m in completed] == [("payments", "debug", None)]
    assert any(isinstance(m, TargetSwitched) and m.previous == "staging" for m in messages)


async def test_picker_with_arrows_and_enter_on_another_service(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("down")  # search
        await pilot.press("enter")  # Enter on a row opens the picker too
        picker = app.screen
        assert isinstance(picker, TargetPicker)
        assert picker.service["name"] == "search"
        options = picker.query_one(OptionList)
        assert options.highlighted == 0  # the active target is highlighted first
        await pilot.press("down", "enter")
        await until(pilot, lambda: fake.active_target("search") == "debug", "the switch")
        await until(pilot, lambda: target_cell(app, "search") == "debug", "the table")
        table = app.main.query_one(ServicesTable)
        assert table.cursor_row == 1  # the cursor stayed on "search"


async def test_escape_cancels_and_choosing_the_active_target_is_a_no_op(fake) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("t", "escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("t", "2")  # staging is already active
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert fake.switches == []


async def test_command_palette_offers_every_service_target_pair(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("ctrl+p")
        await pilot.press(*"switch search debug")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: fake.switches == [("search", "debug")], "the switch")
        await until(pilot, lambda: target_cell(app, "search") == "debug", "the table")


async def test_a_refused_switch_is_reported_not_raised(fake: FakeControl) -> None:
    messages: list[Message] = []
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, fake)
        app.post_message(SwitchRequested("payments", "nowhere"))
        await until(
            pilot, lambda: any(isinstance(m, SwitchCompleted) for m in messages), "the answer"
        )
        done = next(m for m in messages if isinstance(m, SwitchCompleted))
        assert done.error is not None and "nowhere" in done.error
        assert fake.active_target("payments") == "staging"
        assert target_cell(app, "payments") == "staging"
        assert any("nowhere" in str(n.message) for n in app._notifications)


async def test_a_switch_made_elsewhere_shows_up(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await fake.switch("payments", "local")  # as if `devamb switch` ran in another terminal
        await until(pilot, lambda: target_cell(app, "payments") == "local", "the table")
