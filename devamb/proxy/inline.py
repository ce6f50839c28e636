"""Runs an exchange's coroutine from the Protocol callback that has its request: no Task.

An asyncio Task per request costs its creation, its registration in the loop's task set (a
Python WeakSet on 3.11), and a trip through the ready queue before its first step; the common
exchange then waits once (the upstream's response head) and is done. `Inline` is the part of a
Task such an exchange needs: it steps the coroutine at once, in a context of its own, and
resumes it from the done-callback of the future it waits on. It is the current task while it
steps (so `asyncio.timeout`, `proxy.deadline` and cancellation behave as in a Task: `cancel`,
`cancelling`, `uncancel` as asyncio's), and the same coroutine runs whatever the exchange does:
faults, retries, mirrors and streamed bodies only wait more often.

Where a task is current already (a callback called from a coroutine, rather than by the loop),
one cannot be entered inside it: the caller makes a real Task then (`task_running`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from asyncio.tasks import _current_tasks, _enter_task, _leave_task  # type: ignore[attr-defined]
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Inline:
    """A coroutine stepped by callbacks (see the module's docstring)."""

    __slots__ = ("_context", "_coro", "_done", "_loop", "_must_cancel", "_requested", "_waiter")

    def __init__(self, coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
        self._coro = coro
        self._loop = loop
        self._context = contextvars.copy_context()
        self._waiter: asyncio.Future[Any] | None = None
        self._done = False
        self._must_cancel = False
        self._requested = 0  # cancellations asked for and not uncancelled

    # -- what asyncio and devamb ask of the current task ----------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._done

    def cancelling(self) -> int:
        return self._requested

    def uncancel(self) -> int:
        if self._requested > 0:
            self._requested -= 1
        return self._requested

    def cancel(self, msg: str | None = None) -> bool:
        if self._done:
            return False
        self._requested += 1
        waiter = self._waiter
        if waiter is not None and waiter.cancel(msg=msg):
            return True  # its callback throws the CancelledError in
        self._must_cancel = True  # thrown in at the next step
        return True

    def get_name(self) -> str:
        return f"Inline-{id(self):x}"

    # -- stepping --------------------------------------------------------------------------------

    def begin(self) -> None:
        """The first step (a cancellation asked for before it is thrown in at once)."""
        self._context.run(self._step)

    def _step(self, exc: BaseException | None = None) -> None:
        if self._must_cancel:
            self._must_cancel = False
            if not isinstance(exc, asyncio.CancelledError):
                exc = asyncio.CancelledError()
        loop, coro = self._loop, self._coro
        self._waiter = None
        _enter_task(loop, self)  # type: ignore[arg-type]
        try:
            # (always called inside self._context: begin, and the callbacks are given it)
            result = coro.send(None) if exc is None else coro.throw(exc)
        except StopIteration:
            self._done = True
        except asyncio.CancelledError:
            self._done = True
        except (KeyboardInterrupt, SystemExit):
            self._done = True
            raise
        except BaseException:  # the coroutine's own handling let it through: as a Task would
            self._done = True
            log.exception("exchange failed")
        else:
            blocking = getattr(result, "_asyncio_future_blocking", None)
            if blocking:
                result._asyncio_future_blocking = False
                self._waiter = result
                result.add_done_callback(self._wakeup, context=self._context)
                if self._must_cancel and result.cancel():
                    self._must_cancel = False
            elif result is None:  # a bare yield (asyncio.sleep(0)): step again soon
                self._loop.call_soon(self._step, context=self._context)
            else:
                self._loop.call_soon(
                    self._step, RuntimeError(f"Inline got bad yield: {result!r}"),
                    context=self._context,
                )
        finally:
            _leave_task(loop, self)  # type: ignore[arg-type]

    def _wakeup(self, future: asyncio.Future[Any]) -> None:
        try:
            future.result()
        except BaseException as exc:
            self._step(exc)
        else:
            self._step()


def task_running(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a task (or an Inline) is stepping now: then no Inline can be entered."""
    return _current_tasks.get(loop) is not None
