"""What the parts of the engine share: the profile and services in force, the recorder and its
store, the event bus, notices.

The lifecycle replaces `profile` and `services` on a reload; the desks read them from here on
every call and never keep copies.
"""

from __future__ import annotations

import logging
import time

from devamb.control.bus import EventBus
from devamb.control.events import Notice
from devamb.control.protocol import NotFound
from devamb.engine.assembly import Profile
from devamb.engine.state import RuntimeState
from devamb.faults.base import FaultContext
from devamb.inspect.masking import Redactor
from devamb.inspect.store import ExchangeStore
from devamb.service.core import Service
from devamb.service.recorder import Recorder

log = logging.getLogger("devamb.engine")


class EngineContext:
    """The engine's shared state; one per engine."""

    def __init__(self, profile: Profile, state: RuntimeState, fault_context: FaultContext) -> None:
        self.profile = profile
        self.secrets = Redactor(profile.secrets)  # masks what status and notices quote
        self.state = state
        self.fault_context = fault_context
        self.bus = EventBus()
        self.store = ExchangeStore(profile.record_budget)
        self.recorder = Recorder(self.store, self.bus)
        self.services: dict[str, Service] = {}
        self.config_errors: list[str] = []  # a rejected profile change, until it is fixed
        self.started = time.time()

    def notice(self, level: str, message: str) -> None:
        """Something the developer should see: logged, and shown by the TUI as a notification."""
        message = self.secrets(message)  # a host name built from ${VAR}, for one
        log.log(logging.getLevelName(level.upper()), "%s", message)
        self.bus.publish(Notice(level=level, message=message))

    def service(self, name: str) -> Service:
        """The running service `name`; ControlError naming the known ones if there is none."""
        service = self.services.get(name)
        if service is None:
            raise NotFound(f"no service {name!r}; known: {', '.join(self.services)}")
        return service
