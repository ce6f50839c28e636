"""Scenarios: named timelines of fault changes (`at: 20s` add a reset, `at: 40s` clear...)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devamb.faults.spec import FaultSpec, parse_fault
from devamb.profile.problems import Problem
from devamb.profile.reader import Node, Reader

SCENARIO_KEYS = ("steps", "loop", "length")
STEP_KEYS = ("at", "service", "add", "on", "off", "remove", "clear")
ACTIONS = ("add", "on", "off", "remove", "clear")


@dataclass(frozen=True)
class Step:
    at: float
    service: str
    action: str  # add | on | off | remove | clear
    fault: FaultSpec | None = None  # for add
    name: str | None = None  # for on / off / remove


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    steps: tuple[Step, ...]
    loop: bool = False
    length: float | None = None  # a loop's period; defaults to the last step's time

    @property
    def period(self) -> float:
        last = max((s.at for s in self.steps), default=0.0)
        return max(self.length or 0.0, last)


def parse_scenarios(node: Node, services: Mapping[str, Any]) -> dict[str, ScenarioSpec]:
    """`services` maps names to ServiceSpec (for protocols and the faults steps refer to)."""
    if not isinstance(node.value, dict):
        node.problem("expected a mapping of scenario names to scenarios")
        return {}
    scenarios: dict[str, ScenarioSpec] = {}
    for name, child in node.items():
        if not isinstance(child.value, dict):
            child.mapping(SCENARIO_KEYS)  # reports what it is instead
            continue
        before = len(child.reader.problems)
        child.mapping(SCENARIO_KEYS, required=("steps",))  # the rest is checked all the same
        loop = child.child("loop").boolean() if child.has("loop") else False
        length = child.child("length").duration() if child.has("length") else None
        if not child.has("steps"):
            continue
        steps_node = child.child("steps")
        if not isinstance(steps_node.value, list) or not steps_node.value:
            steps_node.problem("expected a list of steps")
            continue
        added = _added_names(steps_node)
        steps = [_step(name, i, s, services, added) for i, s in enumerate(steps_node.elements())]
        if all(s is not None for s in steps) and len(child.reader.problems) == before:
            ordered = tuple(sorted((s for s in steps if s), key=lambda s: s.at))
            scenarios[name] = ScenarioSpec(name, ordered, bool(loop), length)
    return scenarios


def _added_names(steps: Node) -> dict[str, set[str]]:
    """Per service, the names this scenario's `add` steps give: later steps may use them."""
    added: dict[str, set[str]] = {}
    for step in steps.value:
        add = step.get("add") if isinstance(step, dict) else None
        name = add.get("name") if isinstance(add, dict) else None
        if isinstance(name, str) and isinstance(step.get("service"), str):
            added.setdefault(step["service"], set()).add(name)
    return added


def _step(scenario: str, index: int, node: Node, services: Mapping[str, Any],
          added: Mapping[str, set[str]]) -> Step | None:
    """One step; every key present is checked, whatever else is wrong with the step."""
    if not isinstance(node.value, dict):
        node.mapping(STEP_KEYS)  # reports what it is instead
        return None
    before = len(node.reader.problems)
    node.mapping(STEP_KEYS, required=("at", "service"))
    at = node.child("at").duration() if node.has("at") else None
    service_name = node.child("service").one_of(services) if node.has("service") else None
    actions = [a for a in ACTIONS if node.has(a)]
    if len(actions) != 1:
        node.problem(f"a step does exactly one of {', '.join(ACTIONS)}")
    fault = None
    if "add" in actions:
        fault = _added_fault(scenario, index, node.child("add"), services, service_name)
    if len(actions) != 1 or len(node.reader.problems) > before:
        return None
    assert at is not None and service_name is not None
    service = services[service_name]
    action = actions[0]
    if action == "clear":
        return Step(at, service_name, "clear")
    if action == "add":
        return None if fault is None else Step(at, service_name, "add", fault=fault)
    target = node.child(action)
    known = [*service.faults, *sorted(added.get(service_name, set()) - set(service.faults))]
    if not known:
        what = "remove" if action == "remove" else f"turn {action}"
        target.problem(f"service {service_name!r} has no faults to {what} (define them under "
                       f"its 'faults', or add them in an earlier step)")
        return None
    fault_name = target.one_of(known)
    return None if fault_name is None else Step(at, service_name, action, name=fault_name)


def _added_fault(scenario: str, index: int, add: Node, services: Mapping[str, Any],
                 service_name: str | None) -> FaultSpec | None:
    """The fault an `add` step adds, checked for its service's protocol. When the service is
    unknown (or has problems of its own), the problems the fault has for every protocol."""
    name = add.value.get("name") if isinstance(add.value, dict) else None
    value = {k: v for k, v in add.value.items() if k != "name"} if isinstance(
        add.value, dict) else add.value
    fault_name = str(name or f"{scenario}.{index}")
    if service_name is not None:
        service = services[service_name]
        kinds = {name: spec.kind for name, spec in service.targets.items()}
        return parse_fault(fault_name, Node(add.reader, add.path, value), service.protocol,
                           kinds)
    found: list[set[Problem]] = []
    for protocol in ("http", "tcp", "grpc", "postgres", "redis"):
        scratch = Reader(add.reader.source, add.reader.interpolator)
        parse_fault(fault_name, Node(scratch, add.path, value), protocol)
        found.append(set(scratch.problems))
    add.reader.problems.extend(sorted(set.intersection(*found)))
    return None


@dataclass
class ScenarioRun:
    """A running scenario: a task that applies steps on time, undoing its additions on stop."""

    spec: ScenarioSpec
    apply: Callable[[Step], None]
    undo: Callable[[ScenarioSpec], None]
    sleep: Callable[[float], Any] = asyncio.sleep
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    step: int = 0
    started: float = 0.0
    rounds: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.started = self.clock()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                origin = self.clock()
                for i, step in enumerate(self.spec.steps):
                    self.step = i
                    wait = origin + step.at - self.clock()
                    if wait > 0:
                        await self.sleep(wait)
                    self.apply(step)
                self.step = len(self.spec.steps)
                if not self.spec.loop:
                    return
                rest = origin + self.spec.period - self.clock()
                if rest > 0:
                    await self.sleep(rest)
                self.undo(self.spec)
                self.rounds += 1
        finally:
            self.task = None

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.undo(self.spec)

    @property
    def running(self) -> bool:
        return self.task is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "running": self.running,
            "step": self.step,
            "steps": len(self.spec.steps),
            "loop": self.spec.loop,
            "rounds": self.rounds,
            "elapsed": round(self.clock() - self.started, 3) if self.running else None,
        }
