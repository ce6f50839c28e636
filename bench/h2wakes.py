"""Turns of the loop per relayed gRPC call: the tasks made, the callbacks scheduled (a task's
steps and wake-ups among them) and the timers, by what they run.

    PYTHONPATH=<tree> python bench/h2wakes.py [--requests N]

Runs bench/h2hotpath.py's `grpc-net` mode (the engine on loopback sockets, grpcio's frames
from bench/h2peer.py) on a uvloop loop that counts `call_soon`, `call_at` and `create_task`,
and prints each per call (the warm-up's calls included in both counts). A task's first step
is a `TaskStepMethWrapper` callback, its wake-up by a future a `task_wakeup`.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h2hotpath  # (bench/ is first on sys.path when run as a script)

WARM_UP = 1000  # the calls h2hotpath's grpc-net mode relays before it measures
counts: collections.Counter[str] = collections.Counter()


def _name(callback: object) -> str:
    return str(getattr(callback, "__qualname__", None) or type(callback).__name__)


class CountingLoop(uvloop.Loop):  # type: ignore[misc]
    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: Any = None) -> Any:
        counts[f"call_soon {_name(callback)}"] += 1
        return super().call_soon(callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,
                context: Any = None) -> Any:
        counts[f"call_at {_name(callback)}"] += 1
        return super().call_at(when, callback, *args, context=context)

    def create_task(self, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        counts[f"create_task {_name(coro)}"] += 1
        return super().create_task(coro, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    h2hotpath.loop_factory = lambda: CountingLoop  # type: ignore[assignment]
    sys.argv = [sys.argv[0], "--mode", "grpc-net", "--requests", str(args.requests),
                "--rounds", "1"]
    h2hotpath.main()
    calls = args.requests + WARM_UP
    print("per call:")
    for what, count in counts.most_common():
        if count / calls >= 0.01:
            print(f"{count / calls:7.2f}  {what}")


if __name__ == "__main__":
    main()
