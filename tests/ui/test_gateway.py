"""The UI's one way to the engine: `ui.gateway.EngineGateway`.

It owns the call deadlines and the words for every failure. These tests check what it says for
each kind of failure (directly, over the fake engine and over a real control client with no
engine behind it, and through the screens that show it), and that no other module of ui/ waits
on the engine with a timeout of its own or words the engine's errors itself.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from devamb.control.client import ControlClient
from devamb.control.protocol import ControlError, EngineUnavailable, Event, Status
from tests.ui.fake_control import FakeControl, demo_exchanges, feature_status
from tests.ui.test_features import SIZE, text_of
from tests.ui.waiting import settled, until
from ui.app import DevambApp, make_app
from ui.gateway import CALL_TIMEOUT, SLOW_CALL_TIMEOUT, EngineCallFailed, EngineGateway
from ui.screens.engine_died import EngineDied
from ui.screens.exchange_actions import ExchangeScreen
from ui.screens.faults import FaultsScreen

UI = Path(__file__).resolve().parents[2] / "ui"
GATEWAY = UI / "gateway.py"
LOST = "lost the engine on /run/devamb.sock (it stopped or died)"


class StallingControl(FakeControl):
    """The fake engine, except that the calls named in `stall` wait until `release` is set."""

    def __init__(self, *stall: str, status: Status | None = None) -> None:
        super().__init__(status or feature_status(), history=demo_exchanges(30))
        self.stall = set(stall)
        self.release = asyncio.Event()

    async def _stalled(self, name: str) -> None:
        if name in self.stall:
            await self.release.wait()

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        await self._stalled("faults")
        return await super().faults(service)

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        await self._stalled("replay")
        return await super().replay(exchange_id, target, diff, ignore)


class FailingControl(FakeControl):
    """The fake engine, except that the calls named in `fail` raise the given error."""

    def __init__(self, fail: dict[str, BaseException]) -> None:
        super().__init__(feature_status(), history=demo_exchanges(30))
        self.fail = fail

    def _check(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    async def faults(self, service: str | None = None) -> dict[str, list[dict[str, Any]]]:
        self._check("faults")
        return await super().faults(service)

    async def start_recording(
        self, service: str, to: str | None = None, filter: str | None = None
    ) -> dict[str, Any]:
        self._check("start_recording")
        return await super().start_recording(service, to, filter)

    async def events(self) -> AsyncIterator[Event]:
        self._check("events")
        async for event in super().events():
            yield event


async def failure_of(gateway: EngineGateway, **call: Any) -> EngineCallFailed:
    with pytest.raises(EngineCallFailed) as caught:
        await gateway.call(**call)
    return caught.value


# -- the gateway itself ------------------------------------------------------------------------


def test_todays_deadlines() -> None:
    gateway = EngineGateway(FakeControl())
    assert (gateway.timeout, gateway.slow_timeout) == (CALL_TIMEOUT, SLOW_CALL_TIMEOUT)
    assert (CALL_TIMEOUT, SLOW_CALL_TIMEOUT) == (10.0, 30.0)


async def test_an_answer_passes_through() -> None:
    fake = FakeControl(history=demo_exchanges(3))
    gateway = EngineGateway(fake)
    assert (await gateway.call(lambda engine: engine.status()))["name"] == "shop"
    assert [e["id"] for e in await gateway.call(lambda engine: engine.exchanges(2))] == [2, 3]


async def test_a_refusal_is_shown_as_the_engine_said_it() -> None:
    gateway = EngineGateway(FakeControl())
    failure = await failure_of(gateway, request=lambda engine: engine.switch("payments", "nope"))
    assert failure.text == "payments: no target 'nope'; known: local, staging, debug"
    assert not failure.lost


async def test_a_call_that_does_not_answer_in_time() -> None:
    fake = StallingControl("faults")
    gateway = EngineGateway(fake, timeout=0.2)
    failure = await failure_of(gateway, request=lambda engine: engine.faults("payments"))
    assert failure.text == "the engine did not answer within 0.2s"
    assert not failure.lost


async def test_a_slow_call_gets_the_longer_deadline() -> None:
    fake = StallingControl("replay")
    gateway = EngineGateway(fake, timeout=0.1, slow_timeout=60.0)
    call = asyncio.ensure_future(gateway.call(lambda engine: engine.replay(3), slow=True))
    await asyncio.sleep(0.5)  # well past the ordinary deadline
    assert not call.done()
    fake.release.set()
    assert (await call)["exchange"]["replay_of"] == 3


async def test_a_lost_engine_gives_the_clients_words() -> None:
    fake = FakeControl()
    fake.die()
    failure = await failure_of(EngineGateway(fake), request=lambda engine: engine.status())
    assert failure.text == "no engine is running" and failure.lost


async def test_no_engine_behind_a_real_control_client(tmp_path: Path) -> None:
    client = ControlClient(tmp_path / "devamb.sock")
    try:
        failure = await failure_of(EngineGateway(client), request=lambda engine: engine.status())
    finally:
        await client.close()
    assert failure.lost
    assert failure.text == f"no engine: there is no control socket at {tmp_path / 'devamb.sock'}"


async def test_a_broken_connection() -> None:
    fake = FailingControl({"faults": ConnectionResetError("reset by peer")})
    failure = await failure_of(EngineGateway(fake), request=lambda engine: engine.faults())
    assert failure.text == "the connection to the engine broke: reset by peer"
    assert not failure.lost


async def test_a_stream_that_fails_says_why() -> None:
    fake = FakeControl()
    gateway = EngineGateway(fake)
    fake.push({"type": "notice", "time": 0.0, "level": "info", "message": "hello"})
    fake.die("engine process exited (code -9)")
    seen = []
    with pytest.raises(EngineCallFailed) as caught:
        async for event in gateway.follow(lambda engine: engine.events()):
            seen.append(event["type"])
    assert seen == ["notice"]
    assert caught.value.text == "engine process exited (code -9)" and caught.value.lost


# -- through the screens -----------------------------------------------------------------------


def app_on(fake: FakeControl) -> DevambApp:
    return make_app(fake, poll_status=False)


async def test_the_faults_panel_shows_the_timeout() -> None:
    fake = StallingControl("faults")
    app = app_on(fake)
    app.gateway.timeout = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        message = app.screen.query_one("#faults-message", Static)
        expected = "the engine did not answer within 0.2s"
        await until(pilot, lambda: text_of(message) == expected, "the timeout's text")
        screen = app.screen
        assert isinstance(screen, FaultsScreen) and screen.faults == []  # nothing made up
        fake.release.set()  # the engine answers again: the next refresh fills the panel
        await until(pilot, lambda: len(screen.faults) == 2, "the faults")


async def test_the_faults_panel_shows_a_lost_engine_in_the_clients_words() -> None:
    fake = FailingControl({"faults": EngineUnavailable(LOST)})
    app = app_on(fake)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        message = app.screen.query_one("#faults-message", Static)
        await until(pilot, lambda: text_of(message) == LOST, "the lost engine's text")


async def test_a_refused_recording_is_shown_as_the_engine_said_it() -> None:
    refusal = "payments: recording needs a mocks/ folder next to the profile"
    fake = FailingControl({"start_recording": ControlError(refusal)})
    app = app_on(fake)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("R")
        await until(
            pilot,
            lambda: any(n.title == "Recording failed" for n in app._notifications),
            "the refusal",
        )
        [shown] = [n for n in app._notifications if n.title == "Recording failed"]
        assert shown.message == refusal


async def test_replay_from_the_detail_waits_for_the_slow_deadline() -> None:
    fake = StallingControl("replay")
    app = app_on(fake)
    app.gateway.timeout = 0.1  # the ordinary deadline: a replay does not use it
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        await pilot.press("r")
        await pilot.pause(0.5)  # well past the ordinary deadline
        assert not any(n.title == "Replay failed" for n in app._notifications)
        fake.release.set()
        await until(
            pilot, lambda: any(n.title == "Replayed" for n in app._notifications), "the replay"
        )


async def test_a_broken_event_stream_is_reported_once_in_the_gateways_words() -> None:
    fake = FailingControl({"events": ConnectionResetError("reset by peer")})
    app = app_on(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, EngineDied), "the dialog")
        dialog = app.screen
        assert isinstance(dialog, EngineDied)
        expected = "the engine's event stream failed: the connection to the engine broke: "
        assert dialog.reason == expected + "reset by peer"


# -- nobody else waits on the engine or words its errors ---------------------------------------

# what an engine call raises before the gateway turns it into EngineCallFailed (which the rest
# of ui/ catches: its `text` is what to show)
ENGINE_ERRORS = {"ControlError", "EngineUnavailable", "TimeoutError", "OSError"}
# (module, function, exception): caught outside the gateway on purpose, and why
ALLOWED_EXCEPTS = {
    # the form checks what is typed with the engine's own pure parser: no engine call
    ("screens/fault_form.py", "check", "ControlError"),
    # writing the HAR file to disk: the file's error, not the engine's
    ("screens/exchange_actions.py", "_export_har", "OSError"),
}


def ui_modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(UI).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(UI.rglob("*.py"))
        if path != GATEWAY
    ]


def names_in(node: ast.expr | None) -> set[str]:
    if node is None:
        return {"(bare except)"}
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, ast.Name | ast.Attribute)}  # fmt: skip


def test_no_other_module_sets_a_deadline_on_the_engine() -> None:
    found = []
    for path, tree in ui_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "wait_for":
                found.append(f"{path}:{node.lineno}: wait_for")
            if isinstance(node, ast.Name) and node.id == "wait_for":
                found.append(f"{path}:{node.lineno}: wait_for")
            if isinstance(node, ast.Name) and "TIMEOUT" in node.id:
                found.append(f"{path}:{node.lineno}: {node.id}")
            if isinstance(node, ast.alias) and "TIMEOUT" in node.name:
                found.append(f"{path}:{node.lineno}: imports {node.name}")
    assert found == [], "deadlines on engine calls belong to ui/gateway.py"


def test_no_other_module_calls_the_control_object_itself() -> None:
    """`<something>.control.<method>(...)` bypasses the gateway's deadline and words."""
    found = []
    for path, tree in ui_modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "control"
            ):
                found.append(f"{path}:{node.lineno}: .control.{node.func.attr}()")
    assert found == []


class ExceptFinder(ast.NodeVisitor):
    """(module, innermost function, exception name) of every `except` or `suppress()` that
    names an engine error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.function = "(module)"
        self.found: set[tuple[str, str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        for name in names_in(node.type) & ENGINE_ERRORS:
            self.found.add((self.path, self.function, name))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if "suppress" in names_in(node.func):
            for argument in node.args:
                for name in names_in(argument) & ENGINE_ERRORS:
                    self.found.add((self.path, self.function, name))
        self.generic_visit(node)


def test_no_other_module_words_the_engines_errors() -> None:
    """Outside the gateway, an `except` (or `suppress`) names an engine error only where
    ALLOWED_EXCEPTS says why."""
    found: set[tuple[str, str, str]] = set()
    for path, tree in ui_modules():
        finder = ExceptFinder(path)
        finder.visit(tree)
        found |= finder.found
    assert found - ALLOWED_EXCEPTS == set(), "engine errors are worded by ui/gateway.py"
    assert ALLOWED_EXCEPTS - found == set(), "stale entries in ALLOWED_EXCEPTS"
