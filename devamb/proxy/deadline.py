"""A timeout for the current task, for the hot path.

`asyncio.timeout()` does the same job, but on Python 3.11 it costs several microseconds per use
(its state is an Enum, and enum attribute access is slow there): measurable at one per proxied
exchange. Same semantics: the task is cancelled when the time is up, and that cancellation (only
that one) comes out of the block as TimeoutError.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    __slots__ = ("_cancelling", "_fired", "_handle", "_task")

    def __init__(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None, "Deadline used outside a task"
        self._task = task
        self._cancelling = task.cancelling()  # cancellations already asked for by others
        self._fired = False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        self._fired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        fired = self._fired and self._task.uncancel() <= self._cancelling
        if fired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
