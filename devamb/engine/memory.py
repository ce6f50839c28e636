"""Hands the C allocator's free pages back to the system after a burst of recorded traffic.

glibc's malloc keeps what Python frees (anything over 512 bytes: read chunks, body previews)
in its heap, and a heap only shrinks from its top: chunks freed between previews the store
keeps leave holes that stay resident. Under bench/run.py's HTTP 1 MiB case ~10 MiB of a 47 MiB
heap was free but resident before the store had dropped anything, ~18 MiB of 89 MiB after;
`malloc_trim(0)` gives every free page back (not only the top) in ~1.5-2.5 ms for such a heap.
So the engine's tick calls `Reclaimer.tick` with the bytes the store has taken in so far: once
`TRIM_AFTER` more have come, and at most every `TRIM_EVERY` seconds, it trims. Where
malloc_trim does not exist (macOS, musl) it does nothing; ctypes is imported at the first
trim, not at start (an idle engine never loads it). Trimming every tick under a 1 MiB burst
(after 2 MiB of records, at most every 0.5 s: the tick's interval) rather than after 8 MiB
and 1 s lowered bench/peak_rss.py's peak VmHWM by ~2 MiB (medians of three alternating runs,
124.7 -> 122.8 MiB), at ~2 ms a trim: ~0.4 % of a core at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TRIM_AFTER = 2 * 1024 * 1024  # bytes of records the store took in since the last trim
TRIM_EVERY = 0.5  # seconds between trims at most (the engine ticks every 0.5 s)


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)` as a callable, or None where there is none."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError, TypeError):  # TypeError: no CDLL(None)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class Reclaimer:
    """When to trim: after `TRIM_AFTER` bytes of new records, at most every `TRIM_EVERY` s."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._added = 0  # the store's count at the last trim
        self._last = float("-inf")
        self._trim: Callable[[], object] | None = None
        self._resolved = False
        self.trims = 0

    def tick(self, added: int) -> bool:
        """`added`: bytes of records the store has taken in since it was made. True if trimmed."""
        if added - self._added < TRIM_AFTER:
            return False
        now = self._clock()
        if now - self._last < TRIM_EVERY:
            return False
        if not self._resolved:
            self._trim, self._resolved = _malloc_trim(), True
        self._added, self._last = added, now
        if self._trim is None:
            return False
        self._trim()
        self.trims += 1
        return True
