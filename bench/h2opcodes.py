"""Python opcodes per relayed HTTP/2 call: a cost figure a shared machine's load does not move.

    python bench/h2opcodes.py [--mode grpc|c1|m100] [--window-updates] [--top N [--all]]

Runs bench/h2hotpath.py's in-memory relay (a real engine, in-memory transports) under a
sys.settrace opcode counter and prints, per call, the Python opcodes and calls executed in all
and on the call's critical path (from a read on either connection to devamb's next write: the
client's request in -> the upstream write, the upstream's answer in -> the client write),
with `--top N` the functions that execute most of the critical path. C work (h2's dicts and
lists, allocation, uvloop) is not counted: a cut in opcodes is a cut in Python work, not a
time; read it with h2hotpath.py's CPU time, which the load moves.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h2hotpath  # (bench/ is first on sys.path when run as a script)

from devamb.proxy import h2front, h2upstream

REPO = str(Path(__file__).resolve().parent.parent) + "/"


class Counter:
    """Opcodes and calls while enabled; opcodes by function and by leg on the path."""

    def __init__(self) -> None:
        self.opcodes = self.calls = 0
        self.leg: str | None = None  # the leg being timed, None off the path
        self.legs: collections.Counter[str] = collections.Counter()
        self.by_code: collections.Counter[CodeType] = collections.Counter()
        self.everywhere = False  # --all: rank functions by all their opcodes, not the path's

    def call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        self.calls += 1
        frame.f_trace_opcodes = True
        return self.step

    def step(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.opcodes += 1
            if self.leg is not None:
                self.legs[self.leg] += 1
                if not self.everywhere:
                    self.by_code[frame.f_code] += 1
            if self.everywhere:
                self.by_code[frame.f_code] += 1
        return self.step

    # the shape of cProfile.Profile, which h2hotpath.run turns on around the timed calls
    def enable(self) -> None:
        sys.settrace(self.call)

    def disable(self) -> None:
        sys.settrace(None)


def watch_legs(counter: Counter) -> None:
    """A leg starts at a read on either connection and ends at the next write."""
    for cls, leg in ((h2front.H2FrontConnection, "request in -> upstream write"),
                     (h2upstream.H2UpstreamConnection, "answer in -> client write")):
        received = cls.data_received

        def data_received(self: Any, data: bytes, received: Any = received,
                          leg: str = leg) -> None:
            if data:  # (not the engine's own call with nothing read: see H2Endpoint)
                counter.leg = leg
            received(self, data)
        cls.data_received = data_received  # type: ignore[method-assign]
    written = h2hotpath.MemoryTransport.write

    def write(self: Any, data: Any) -> None:
        counter.leg = None
        written(self, data)
    h2hotpath.MemoryTransport.write = write  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("grpc", "c1", "m100"), default="grpc")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--window-updates", action="store_true",
                        help="grpc: with the WINDOW_UPDATE frames grpcio sends per call")
    parser.add_argument("--top", type=int, default=0, help="the N functions most on the path")
    parser.add_argument("--all", action="store_true",
                        help="with --top: rank functions by all their opcodes (records, "
                             "off-path work too), not only the critical path's")
    args = parser.parse_args()
    h2hotpath.WINDOW_UPDATES = args.window_updates
    counter = Counter()
    counter.everywhere = args.all
    watch_legs(counter)
    h2hotpath.cProfile.Profile = lambda: counter  # type: ignore[assignment,misc]

    class NoStats:
        def __init__(self, *_: Any) -> None: ...
        def sort_stats(self, *_: Any) -> NoStats: return self
        def print_stats(self, *_: Any) -> None: ...
    h2hotpath.pstats.Stats = NoStats  # type: ignore[assignment,misc]
    with asyncio.Runner(loop_factory=h2hotpath.loop_factory()) as runner:
        runner.run(h2hotpath.run(args.mode, args.requests, True))
    n = args.requests
    path = sum(counter.legs.values())
    print(f"{args.mode}{' +window updates' if args.window_updates else ''}: "
          f"{counter.opcodes / n:.0f} opcodes and {counter.calls / n:.0f} Python calls per "
          f"call; critical path {path / n:.0f} opcodes ("
          + ", ".join(f"{leg} {count / n:.0f}" for leg, count in counter.legs.items()) + ")")
    for code, count in counter.by_code.most_common(args.top):
        where = code.co_filename.split("site-packages/")[-1].replace(REPO, "")
        print(f"{count / n:7.0f}  {where}:{code.co_firstlineno} {code.co_name}")


if __name__ == "__main__":
    main()
