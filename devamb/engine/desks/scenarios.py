"""The scenario desk: the profile's timed fault scripts, started and stopped at runtime."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from devamb.control.protocol import NotFound
from devamb.engine.context import EngineContext

if TYPE_CHECKING:  # the runner is imported by the first scenario run (issue 22: RSS)
    from devamb.faults.scenario import ScenarioRun, ScenarioSpec, Step


class ScenarioDesk:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.runs: dict[str, ScenarioRun] = {}  # by name, made on first use

    async def scenarios(self) -> list[dict[str, Any]]:
        return self.to_json()

    def to_json(self) -> list[dict[str, Any]]:
        """Each of the profile's scenarios: {name, running, step, steps, loop, rounds, ...}."""
        return [self.run(name).to_json() for name in self.ctx.profile.scenarios]

    async def start_scenario(self, name: str) -> None:
        run = self.run(name)
        if not run.running:
            run.start()
            self.ctx.notice("info", f"scenario {name!r} started")

    async def stop_scenario(self, name: str) -> None:
        run = self.run(name)
        if run.running:
            await run.stop()
            self.ctx.notice("info", f"scenario {name!r} stopped")

    def cancel_all(self) -> None:
        """The engine stops: end every running scenario where it is (nothing is undone)."""
        for run in self.runs.values():
            if run.task is not None:
                run.task.cancel()

    def run(self, name: str) -> ScenarioRun:
        spec = self.ctx.profile.scenarios.get(name)
        if spec is None:
            known = ", ".join(self.ctx.profile.scenarios) or "none"
            raise NotFound(f"no scenario {name!r}; known: {known}")
        run = self.runs.get(name)
        if run is None:
            from devamb.faults.scenario import ScenarioRun

            context = self.ctx.fault_context
            run = self.runs[name] = ScenarioRun(
                spec, self._apply, self._undo, sleep=context.sleep, clock=context.clock
            )
        return run

    def _apply(self, step: Step) -> None:
        service = self.ctx.services[step.service]
        faults = service.faults
        if step.action == "add" and step.fault is not None:
            faults.add(step.fault)
        elif step.action in ("on", "off") and step.name:
            faults.set_enabled(step.name, step.action == "on")
        elif step.action == "remove" and step.name:
            faults.remove(step.name)
        elif step.action == "clear":
            names: Iterable[str] = faults.names()
            for name in names:
                if name not in service.spec.faults:
                    faults.remove(name)  # what was added at runtime; profile faults stay
                else:
                    faults.set_enabled(name, False)

    def _undo(self, spec: ScenarioSpec) -> None:
        """Remove what the scenario added; the profile's faults of the services it touched go
        back as the profile defines them (also those a `remove` or `clear` step took away)."""
        for name in dict.fromkeys(step.service for step in spec.steps):
            service = self.ctx.services.get(name)
            if service is None:
                continue
            faults = service.faults
            for step in spec.steps:
                added = step.fault if step.action == "add" and step.service == name else None
                if added is not None and added.name not in service.spec.faults:
                    faults.remove(added.name)
            for fault_name, defined in service.spec.faults.items():
                state = faults.get(fault_name)
                if state is None or state.spec != defined:
                    faults.add(defined)
                else:
                    faults.set_enabled(fault_name, defined.enabled)
