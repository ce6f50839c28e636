"""Callbacks at loop times asked for in the order they fall due, for the hot path: one loop
timer for the earliest, not one each (deadline.DueQueue, as for the deadlines of a duration).

An HTTP/2 call waits for its response headers with a bound (service/h2_retry.py); a loop timer
for it is made, started, stopped and closed per call under uvloop, and a libuv handle closed
in a turn makes that turn's poll a non-blocking one: one more turn of the loop, and an epoll
system call, per call after its answer was written. Here an alarm is a queue entry: the
calls of one service wait at most the same time, so they fall due in the order they were
asked for; one asked for before the latest gets a timer of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from devamb.proxy.deadline import DueQueue


class Alarm:
    """One callback at a loop time; `cancel` before then and it never runs."""

    __slots__ = ("_expires", "_queue", "callback")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._expires = when
        self._queue: DueQueue | None = None
        self.callback = callback

    def cancel(self) -> None:
        if self._queue is not None:
            queue, self._queue = self._queue, None
            queue.leave()

    def _fire(self) -> None:
        try:
            self.callback()
        except Exception as exc:  # (as a loop's handle reports it; the queue rings on)
            asyncio.get_running_loop().call_exception_handler({
                "message": f"Exception in alarm callback {self.callback!r}", "exception": exc})


_alarms: DueQueue | None = None  # the running loop's (one loop at a time: tests make many)


def alarm(loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], object]
          ) -> Alarm | asyncio.TimerHandle:
    """`callback()` at loop time `when` (at most deadline.EARLY before, as a loop timer may),
    unless the answer is cancelled first."""
    global _alarms
    alarms = _alarms
    if alarms is None or alarms.loop is not loop:
        alarms = _alarms = DueQueue(loop)
    entries = alarms.entries
    if entries and when < entries[-1]._expires:  # out of order: a timer of its own
        return loop.call_at(when, callback)
    due = Alarm(when, callback)
    alarms.add(due)
    return due
