"""What the parts of the engine share: the profile and services in force, the recorder and its
store, the event bus, notices.

The lifecycle replaces `profile` and `services` on a reload; the desks read them from here on
every call and never keep copies.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from devamb.control.bus import EventBus
from devamb.control.events import EngineEvent, ExchangeCompleted, Notice
from devamb.control.protocol import NotFound
from devamb.engine.assembly import Profile
from devamb.engine.state import RuntimeState
from devamb.faults.base import FaultContext
from devamb.inspect.masking import Redactor
from devamb.inspect.store import ExchangeStore
from devamb.service.core import Service
from devamb.service.recorder import Recorder
from devamb.tunnel.registry import Tunnels

log = logging.getLogger("devamb.engine")


class EngineContext:
    """The engine's shared state; one per engine."""

    def __init__(self, profile: Profile, state: RuntimeState, fault_context: FaultContext) -> None:
        self.profile = profile
        self.secrets = Redactor(profile.secrets)  # masks what status and notices quote
        self.state = state
        self.fault_context = fault_context
        self.bus = EventBus(mask=self.masked)  # every event is masked there, once
        self.store = ExchangeStore(profile.record_budget)
        self.recorder = Recorder(self.store, self.bus)
        self.services: dict[str, Service] = {}
        self.config_errors: list[str] = []  # a rejected profile change, until it is fixed
        self.started = time.time()
        self.tunnels = Tunnels(self.notice)  # the profile's bastions (lifecycle fills it)

    def notice(self, level: str, message: str) -> None:
        """Something the developer should see: logged, and shown by the TUI as a notification."""
        # a host name built from ${VAR}, for one: masked for the log here, by the bus for events
        log.log(logging.getLevelName(level.upper()), "%s", self.secrets(message))
        self.bus.publish(Notice(level=level, message=message))

    def masked(self, event: EngineEvent) -> EngineEvent:
        """`event` with every string in it masked by the profile's secrets (those of every
        profile loaded so far). The bus calls this once for each event it publishes; an
        exchange's summary was masked when it was made, by its service's redaction."""
        if isinstance(event, ExchangeCompleted) or not self.secrets:
            return event
        changes = {
            f.name: self.secrets.walk(getattr(event, f.name))
            for f in dataclasses.fields(event)
            if f.name != "time"
        }
        return dataclasses.replace(event, **changes) if changes else event

    def service(self, name: str) -> Service:
        """The running service `name`; ControlError naming the known ones if there is none."""
        service = self.services.get(name)
        if service is None:
            raise NotFound(f"no service {name!r}; known: {', '.join(self.services)}")
        return service
