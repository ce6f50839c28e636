"""Callbacks at loop times asked for in the order they fall due, for the hot path: one loop
timer for the earliest, not one each (as `deadline` does for the current task's timeouts).

An HTTP/2 call waits for its response headers with a bound (service/h2_retry.py); a loop timer
for it is made, started, stopped and closed per call under uvloop, and a libuv handle closed
in a turn makes that turn's poll a non-blocking one: one more turn of the loop, and an epoll
system call, per call after its answer was written. Here an alarm is a deque entry: the
calls of one service wait at most the same time, so they fall due in the order they were
asked for; one asked for before the latest gets a timer of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from devamb.proxy.deadline import EARLY


class Alarm:
    """One callback at a loop time; `cancel` before then and it never runs."""

    __slots__ = ("_alarms", "callback", "when")

    def __init__(self, alarms: _Alarms, when: float, callback: Callable[[], object]) -> None:
        self._alarms = alarms
        self.when = when
        self.callback: Callable[[], object] | None = callback

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self._alarms.left()


class _Alarms:
    """The alarms of one loop, earliest first; cancelled ones stay until they reach the head
    (or a compaction). The timer stays when its alarm is cancelled: it runs once at its time
    and finds the next, instead of a timer per call when calls come one at a time."""

    __slots__ = ("armed", "entries", "handle", "live", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.entries: deque[Alarm] = deque()
        self.handle: asyncio.TimerHandle | None = None
        self.armed = 0.0  # when the handle runs
        self.live = 0

    def add(self, when: float, callback: Callable[[], object]) -> Alarm | asyncio.TimerHandle:
        entries = self.entries
        if entries and when < entries[-1].when:  # out of order: a timer of its own
            return self.loop.call_at(when, callback)
        alarm = Alarm(self, when, callback)
        entries.append(alarm)
        self.live += 1
        handle = self.handle
        if handle is None or when < self.armed:  # (the latter: every alarm before it left)
            if handle is not None:
                handle.cancel()
            self.handle = self.loop.call_at(when, self._ring)
            self.armed = when
        return alarm

    def left(self) -> None:
        """An alarm was cancelled."""
        self.live -= 1
        entries = self.entries
        while entries and entries[0].callback is None:
            entries.popleft()
        if len(entries) > 64 and len(entries) > 4 * self.live:  # held up behind a long one
            self.entries = deque(a for a in entries if a.callback is not None)

    def _ring(self) -> None:
        self.handle = None
        entries, loop = self.entries, self.loop
        now = loop.time()
        while entries:
            head = entries[0]
            callback = head.callback
            if callback is None:
                entries.popleft()
            elif head.when <= now + EARLY:
                entries.popleft()
                head.callback = None
                self.live -= 1
                try:
                    callback()
                except Exception as exc:  # (as a loop's handle reports it)
                    loop.call_exception_handler({
                        "message": f"Exception in alarm callback {callback!r}",
                        "exception": exc})
            else:
                self.handle = loop.call_at(head.when, self._ring)
                self.armed = head.when
                return


_alarms: _Alarms | None = None  # the running loop's (one loop at a time: tests make many)


def alarm(loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], object]
          ) -> Alarm | asyncio.TimerHandle:
    """`callback()` at loop time `when` (at most EARLY before, as a loop timer may), unless
    the answer is cancelled first."""
    global _alarms
    alarms = _alarms
    if alarms is None or alarms.loop is not loop:
        alarms = _alarms = _Alarms(loop)
    return alarms.add(when, callback)
