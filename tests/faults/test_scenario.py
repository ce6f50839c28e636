"""Scenarios: a timeline of fault changes, run against an injected clock that the test moves."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.faults.conftest import Setup, SetupFactory


class SteppedTime:
    """Sleeps wait until the test moves the clock past their end."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while due := sorted((s for s in self._sleepers if s[0] <= end), key=lambda s: s[0]):
            when, future = due[0]
            self._sleepers.remove(due[0])
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
            await _settle()
        self.now = end
        await _settle()


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


SCENARIOS = """
scenarios:
  outage:
    steps:
      - {at: 20s, service: api, add: {name: cut, kind: abort, status: 503}}
      - {at: 0s, service: api, add: {name: slow, kind: latency, delay: 300ms}}
      - {at: 40s, service: api, clear: true}
  flap:
    loop: true
    length: 10s
    steps:
      - {at: 0s, service: api, "on": boom}
      - {at: 5s, service: api, "off": boom}
  wobble:
    steps:
      - {at: 0s, service: raw, add: {name: lag, kind: latency, delay: 1s}}
      - {at: 5s, service: raw, "off": lag}
      - {at: 6s, service: raw, "on": lag}
      - {at: 7s, service: raw, remove: lag}
"""

BOOM = """
faults:
  boom: {kind: abort, status: 500, enabled: false}
"""


async def _faults(s: Setup, service: str = "api") -> dict[str, bool]:
    return {f["name"]: f["enabled"] for f in (await s.engine.faults(service))[service]}


async def _run(s: Setup, name: str) -> dict[str, Any]:
    [run] = [r for r in await s.engine.scenarios() if r["name"] == name]
    return run


async def _status(s: Setup) -> int:
    async with aiohttp.ClientSession() as client, client.get(s.url + "/x") as r:
        return r.status


@pytest.fixture
async def timeline(setup: SetupFactory) -> tuple[Setup, SteppedTime]:
    time_ = SteppedTime()
    s = await setup(time_=time_, extra=SCENARIOS, api_extra=BOOM)
    return s, time_


async def test_a_timeline_applies_its_steps_on_time(timeline) -> None:
    s, time_ = timeline
    await s.engine.start_scenario("outage")
    await _settle()
    assert await _faults(s) == {"boom": False, "slow": True}
    assert (await _run(s, "outage"))["running"] is True
    await time_.advance(19.0)
    assert await _faults(s) == {"boom": False, "slow": True}
    await time_.advance(1.0)
    assert await _faults(s) == {"boom": False, "slow": True, "cut": True}
    assert await _status(s) == 503
    await time_.advance(20.0)
    assert await _faults(s) == {"boom": False}  # clear: additions go, profile faults turn off
    assert await _status(s) == 200
    run = await _run(s, "outage")
    assert run["running"] is False and run["step"] == 3


async def test_stopping_undoes_what_the_scenario_added(timeline) -> None:
    s, time_ = timeline
    await s.engine.start_scenario("outage")
    await _settle()
    await time_.advance(25.0)
    assert await _faults(s) == {"boom": False, "slow": True, "cut": True}
    await s.engine.stop_scenario("outage")
    assert await _faults(s) == {"boom": False}
    assert (await _run(s, "outage"))["running"] is False
    await time_.advance(100.0)
    assert await _faults(s) == {"boom": False}  # nothing more happens once stopped


async def test_a_loop_repeats_and_stop_restores_the_profile_state(timeline) -> None:
    s, time_ = timeline
    await s.engine.start_scenario("flap")
    await _settle()
    seen = []
    for _ in range(5):
        on = (await _faults(s))["boom"]
        assert await _status(s) == (500 if on else 200)
        seen.append(on)
        await time_.advance(5.0)
    assert seen == [True, False, True, False, True]
    assert (await _run(s, "flap"))["rounds"] == 2
    await time_.advance(5.0)
    assert (await _faults(s))["boom"] is True
    await s.engine.stop_scenario("flap")
    assert await _faults(s) == {"boom": False}
    assert await _status(s) == 200


async def test_steps_may_name_a_fault_an_earlier_step_added(timeline) -> None:
    s, time_ = timeline
    await s.engine.start_scenario("wobble")
    await _settle()
    assert await _faults(s, "raw") == {"lag": True}
    await time_.advance(5.0)
    assert await _faults(s, "raw") == {"lag": False}
    await time_.advance(1.0)
    assert await _faults(s, "raw") == {"lag": True}
    await time_.advance(1.0)
    assert await _faults(s, "raw") == {}


async def test_unknown_scenarios_are_refused(timeline) -> None:
    from devamb.control.protocol import ControlError

    s, _ = timeline
    with pytest.raises(ControlError, match="no scenario 'nope'; known: outage, flap, wobble"):
        await s.engine.start_scenario("nope")


GATE = """
faults:
  gate: {kind: abort, status: 502}
"""

UNDO = """
scenarios:
  hush:
    loop: true
    length: 100s
    steps:
      - {at: 0s, service: api, clear: true}
  drop:
    loop: true
    length: 100s
    steps:
      - {at: 0s, service: api, remove: gate}
"""


@pytest.fixture
async def undo(setup: SetupFactory) -> tuple[Setup, SteppedTime]:
    time_ = SteppedTime()
    s = await setup(time_=time_, extra=UNDO, api_extra=GATE)
    return s, time_


async def test_stopping_turns_back_on_what_a_clear_turned_off(undo) -> None:
    s, _ = undo
    await s.engine.start_scenario("hush")
    await _settle()
    assert await _faults(s) == {"gate": False}
    await s.engine.stop_scenario("hush")
    assert await _faults(s) == {"gate": True}


async def test_stopping_puts_back_what_a_remove_removed(undo) -> None:
    s, _ = undo
    await s.engine.start_scenario("drop")
    await _settle()
    assert await _faults(s) == {}
    await s.engine.stop_scenario("drop")
    assert await _faults(s) == {"gate": True}
