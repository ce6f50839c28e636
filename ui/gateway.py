"""EngineGateway: the UI's one way to the engine.

The app and every screen reach the engine through one gateway. `call()` bounds how long the UI
waits for an answer (`CALL_TIMEOUT`, or `SLOW_CALL_TIMEOUT` for a call that sends a request
upstream or builds a whole file) and turns every failure into `EngineCallFailed`, whose `text` is
what the UI shows: a refused request in the engine's own words, a lost engine as the control
client says it, a timeout, a broken connection. `follow()` does the same for the streams (events,
container logs), which have no deadline. `failure_text()` is the one place those words are
chosen. No other module of `ui/` waits on the engine with its own timeout or words its errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from devamb.control.protocol import ControlError, EngineControl, EngineUnavailable

T = TypeVar("T")

CALL_TIMEOUT = 10.0  # seconds: no engine call may hang the UI for longer
SLOW_CALL_TIMEOUT = 30.0  # seconds: replay (a request upstream) and export (a whole HAR)


class EngineCallFailed(Exception):
    """An engine call failed; `text` says why, as the UI shows it. `lost`: no engine answers."""

    def __init__(self, text: str, *, lost: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.lost = lost


def failure_text(error: BaseException, timeout: float | None = None) -> str:
    """What the UI says about a failed engine call (`timeout`: the deadline it missed)."""
    if isinstance(error, EngineCallFailed):
        return error.text
    if isinstance(error, ControlError):
        return error.message  # as the engine (or, for a lost engine, the client) said it
    if isinstance(error, TimeoutError):
        within = f"within {timeout:g}s" if timeout is not None else "in time"
        return f"the engine did not answer {within}"
    if isinstance(error, OSError):
        return f"the connection to the engine broke: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class EngineGateway:
    """Wraps the app's `EngineControl`; `control` is replaced when the engine is restarted."""

    def __init__(
        self,
        control: EngineControl,
        *,
        timeout: float = CALL_TIMEOUT,
        slow_timeout: float = SLOW_CALL_TIMEOUT,
    ) -> None:
        self.control = control
        self.timeout = timeout
        self.slow_timeout = slow_timeout

    async def call(
        self, request: Callable[[EngineControl], Awaitable[T]], *, slow: bool = False
    ) -> T:
        """`await gateway.call(lambda engine: engine.status())`: the answer, or EngineCallFailed.

        `slow`: the call may take up to `slow_timeout` (replay, export) instead of `timeout`.
        """
        timeout = self.slow_timeout if slow else self.timeout
        try:
            return await asyncio.wait_for(request(self.control), timeout)
        except EngineUnavailable as error:
            raise EngineCallFailed(failure_text(error), lost=True) from error
        except (ControlError, OSError, TimeoutError) as error:
            raise EngineCallFailed(failure_text(error, timeout)) from error

    async def follow(
        self, stream: Callable[[EngineControl], AsyncIterator[T]]
    ) -> AsyncIterator[T]:
        """A stream's items (events, log lines) until it ends; a failure as EngineCallFailed."""
        try:
            async for item in stream(self.control):
                yield item
        except EngineUnavailable as error:
            raise EngineCallFailed(failure_text(error), lost=True) from error
        except (ControlError, OSError) as error:
            raise EngineCallFailed(failure_text(error)) from error
