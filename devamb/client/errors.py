"""The client's exceptions: the engine's own refusals (each carries the engine's message in
`.message`, its HTTP status in `.status`), and the client's own waits that ran out."""

from __future__ import annotations

from devamb.control.protocol import Conflict, ControlError, EngineUnavailable, NotFound

__all__ = ["Conflict", "ControlError", "EngineUnavailable", "NotFound", "WaitTimeout"]


class WaitTimeout(ControlError, TimeoutError):
    """What was waited for (an exchange, the end of a scenario) did not happen in time."""

    status = 408
