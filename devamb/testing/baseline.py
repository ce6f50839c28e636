"""What an engine looked like when it started (active targets, faults), and putting it back
after a test changed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devamb.client import Client, ControlError

COUNTERS = ("fired", "seen", "last_fired", "enabled")  # what a fault may change on its own


def _shape(fault: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fault.items() if k not in COUNTERS}


@dataclass(frozen=True)
class Baseline:
    targets: dict[str, str]  # service -> active target
    faults: dict[str, dict[str, dict[str, Any]]]  # service -> fault name -> fault

    @classmethod
    def of(cls, client: Client) -> Baseline:
        status = client.status()
        return cls(
            {s["name"]: s["target"] for s in status["services"]},
            {s: {f["name"]: f for f in faults} for s, faults in client.faults.list().items()},
        )

    def restore(self, client: Client) -> bool:
        """Put the engine back: stop scenarios, remove added faults, turn the profile's back
        on or off, switch targets back. False when that cannot be done through the API (a
        profile fault was removed or replaced, a recording runs, the engine is gone): the
        engine must then be restarted."""
        try:
            for scenario in client.scenario.list():
                if scenario["running"]:
                    client.scenario.stop(scenario["name"])
            status = client.status()
            if status["recordings"]:
                return False
            for service in status["services"]:
                name = service["name"]
                if name in self.targets and service["target"] != self.targets[name]:
                    client.switch(name, self.targets[name])
            return self._restore_faults(client)
        except ControlError:
            return False

    def _restore_faults(self, client: Client) -> bool:
        for service, faults in client.faults.list().items():
            base = self.faults.get(service, {})
            if not set(base) <= {f["name"] for f in faults}:
                return False  # removed: only the profile can give it back
            for fault in faults:
                name = fault["name"]
                if name not in base:
                    client.faults.remove(service, name)
                elif _shape(fault) != _shape(base[name]):
                    return False  # replaced by one of the same name
                elif fault["enabled"] != base[name]["enabled"]:
                    (client.faults.enable if base[name]["enabled"] else client.faults.disable)(
                        service, name
                    )
        return True
