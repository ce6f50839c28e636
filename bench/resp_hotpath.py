"""The Python cost of one relayed Redis command, without sockets or other processes.

    python bench/resp_hotpath.py [--pipeline 16] [--commands N] [--profile] [--tcp]
    python bench/resp_hotpath.py --instructions [--pipeline 16] [--tcp] [--only get|set]
                                                                            (needs valgrind)

A real engine (profile, listener, recorder; recording on) relays redis-benchmark's GET and SET
through a `protocol: redis` service (`--tcp`: a plain `protocol: tcp` one, for the floor): the
relay's client and upstream sockets are in-memory transports; each round the client sends
`--pipeline` commands in one chunk and the "server" answers them in one chunk, both fed
straight into the relay's Protocols. What is timed (CPU) is devamb's work per command: the
follower reading both directions, recording, the writes. Compare two versions of the Redis
hot path with it; `bench/databases.py` gives the throughput with real clients.

`--instructions` counts instead of timing: valgrind's cachegrind over 2,000 and 12,000
commands after the same warm-up, the difference over 10,000 (start-up cancels out; hash seed
fixed). The count does not move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cachegrind import instructions_per
from hotpath import MemoryTransport

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.runner import loop_factory
from devamb.service.tcp import _Relay, _Side

KEY = b"key:__rand_int__"  # redis-benchmark's key (without -r)
SET = b"*3\r\n$3\r\nSET\r\n$16\r\n" + KEY + b"\r\n$3\r\nxxx\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$16\r\n" + KEY + b"\r\n"
REPLIES = {SET: b"+OK\r\n", GET: b"$3\r\nxxx\r\n"}


async def run(commands: int, pipeline: int, profile: bool, protocol: str,
              warmup: int = 2000, only: str = "", later: bool = False) -> float:
    folder = Path(tempfile.mkdtemp(prefix="devamb-resp-hotpath-"))
    path = folder / "devamb.yaml"
    path.write_text(f"services:\n  cache:\n    listen: 0\n    protocol: {protocol}\n"
                    "    targets:\n      up: tcp://127.0.0.1:9\n")
    engine = Engine(load_profile(path))
    await engine.start()
    listener = engine.lifecycle.listeners["cache"]
    relay = _Relay(listener)  # type: ignore[arg-type]
    client = _Side(relay, True)
    client.connection_made(MemoryTransport(lambda _data: None))
    for task in list(listener.pending):  # type: ignore[attr-defined]
        task.cancel()  # (no dialling: the upstream side is linked by hand below)
    relay._connecting = (engine.services["cache"].target(), ("127.0.0.1", 9))
    upstream = _Side(relay, False)
    upstream.connection_made(MemoryTransport(lambda _data: None))

    turn = listener.later  # type: ignore[attr-defined]
    if later:  # another connection open: each chunk read at the end of the loop's turn
        other = _Relay(listener)  # type: ignore[arg-type]
        other.close = lambda: None  # type: ignore[method-assign]
        listener.relays.add(other)  # type: ignore[attr-defined]
        turn.scheduled = True  # (its call_soon, one per turn of several chunks: not counted)

    def rounds(count: int) -> None:
        for i in range(count):
            command = {"get": GET, "set": SET}.get(only) or (SET if i % 2 == 0 else GET)
            client.data_received(command * pipeline)
            if later:
                turn.run()
                turn.scheduled = True
            upstream.data_received(REPLIES[command] * pipeline)
            if later:
                turn.run()
                turn.scheduled = True

    rounds(max(warmup // pipeline, 2))
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    count = max(commands // pipeline, 2)
    started = time.process_time()  # CPU time: less moved by other jobs than the wall clock
    rounds(count)
    elapsed = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    assert engine.services["cache"].counters.requests >= (count * pipeline if protocol == "redis"
                                                          else 0)
    client.connection_lost(None)
    upstream.connection_lost(None)
    await engine.stop()
    return elapsed / (count * pipeline) * 1e6


def instructions(pipeline: int, protocol: str, only: str = "", later: bool = False) -> int:
    """Instructions per command (see the module's docstring)."""

    def arguments(commands: int) -> list[str]:
        return ["--rounds", "1", "--pipeline", str(pipeline), "--commands", str(commands),
                *(["--tcp"] if protocol == "tcp" else []), *(["--only", only] if only else []),
                *(["--later"] if later else [])]

    return instructions_per(__file__, arguments, 2000, 12000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tcp", action="store_true", help="a plain protocol: tcp relay")
    parser.add_argument("--only", choices=("get", "set"), default="",
                        help="relay only GETs or only SETs (default: the two in turn)")
    parser.add_argument("--later", action="store_true",
                        help="as with other connections open: chunks read at the end of the "
                        "loop's turn (tcp_follow.Later; its call_soon per turn not counted)")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per command under valgrind (steady)")
    args = parser.parse_args()
    protocol = "tcp" if args.tcp else "redis"
    if args.instructions:
        count = instructions(args.pipeline, protocol, args.only, args.later)
        what = f" {args.only.upper()}" if args.only else ""
        print(f"{protocol} relay{what}, P{args.pipeline}: {count:,} instructions per command")
        return
    figures = []
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.commands, args.pipeline, args.profile, protocol,
                                          only=args.only, later=args.later)))
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    print(f"{protocol} relay, P{args.pipeline}, {loop}: {min(figures):.2f} us CPU per command "
          f"(best of {args.rounds}; all {', '.join(f'{f:.2f}' for f in figures)})")


if __name__ == "__main__":
    main()
