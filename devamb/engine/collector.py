"""The cyclic garbage collector, set for a long-running engine.

What the engine holds once started (modules, profile, compiled descriptors, listeners) lives
as long as the process: `settle` moves it out of the collector's sight (gc.freeze), so that
the full collections a busy relay triggers walk only what came after, and young collections
run less often (threshold 700 -> 5000 new objects: each relayed call makes hundreds of
short-lived ones, most freed by reference counting alone). bench/h2hotpath.py: the full
collections were ~15 % of the CPU of an HTTP/2 relay keeping a thousand exchanges.
"""

from __future__ import annotations

import gc

YOUNG = 5000


def settle() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
