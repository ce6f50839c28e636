"""The Python cost of one `pgbench -S` query through a relay, without sockets or other processes.

    python bench/pg_hotpath.py [--queries N] [--rounds 3] [--protocol postgres|tcp] [--profile]
                               [--faults] [--instructions]

A real engine (profile, listener, recorder) relays one connection fed straight into its two
`_Side` Protocols through in-memory transports: the client's side gets pgbench's select-only
Query, the server's side answers with what PostgreSQL answers it (RowDescription, DataRow,
CommandComplete, ReadyForQuery), each as one chunk, as on a socket. What is timed is devamb's
own work per query (CPU time): the relay and, for `protocol: postgres`, the follower and its
record. No kernel, no scheduler: compare two versions of the hot path with it (`--profile`
adds a cProfile listing; `--faults` arms a latency fault that never matches, so every
statement goes through the command gate). `--instructions` counts instead of timing: the CPU
instructions of one query under valgrind's cachegrind, the difference of a 1,000 and a 4,000
query run (start-up cancels; the figure does not move with the machine's load).
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

from cachegrind import instructions_per
from hotpath import MemoryTransport

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.runner import loop_factory
from devamb.service.tcp import _Relay, _Side

_PARAMS = b"\0\3\0\0user\0app\0database\0postgres\0\0"
STARTUP = (len(_PARAMS) + 4).to_bytes(4) + _PARAMS

def _message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4) + body


def query(aid: int) -> bytes:
    return _message(b"Q", f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};\0".encode())


STARTED = (_message(b"R", b"\0\0\0\0") + _message(b"S", b"server_version\x0015.8\0")
           + _message(b"K", b"\0\0\x12\x34\0\0\x56\x78") + _message(b"Z", b"I"))
ANSWER = (_message(b"T", b"\0\1abalance\0" + b"\0\0\x40\x02\0\3\0\0\0\x17\0\4\xff\xff\xff\xff\0\0")
          + _message(b"D", b"\0\1\0\0\0\x01" + b"0")
          + _message(b"C", b"SELECT 1\0") + _message(b"Z", b"I"))


async def run(queries: int, protocol: str, profile: bool, faults: bool,
              warmup: int = 2000) -> float:
    folder = Path(tempfile.mkdtemp(prefix="devamb-pg-hotpath-"))
    path = folder / "devamb.yaml"
    armed = ("    faults:\n      never: {kind: latency, delay: 5ms, match: {sql: 'no such "
             "statement'}}\n") if faults else ""
    path.write_text(f"services:\n  db:\n    listen: 0\n    protocol: {protocol}\n{armed}"
                    "    targets:\n      local: tcp://127.0.0.1:9\n")
    engine = Engine(load_profile(path))
    await engine.start()
    loop = asyncio.get_running_loop()
    listener = engine.lifecycle.listeners["db"]
    service = engine.services["db"]
    answered: list[asyncio.Future[None]] = []

    def client_got(data: bytes) -> None:
        if data.endswith(b"Z\0\0\0\x05I") and answered and not answered[0].done():
            answered[0].set_result(None)

    relay = _Relay(listener)
    client = _Side(relay, True)
    client.connection_made(MemoryTransport(client_got))
    for task in list(listener.pending):  # `begin` would dial the target: cancelled before it
        task.cancel()  # runs; an in-memory upstream is linked instead, as `link` does
    upstream = _Side(relay, False)
    server_reply: list[bytes] = []

    def server_got(data: bytes) -> None:
        if server_reply:
            loop.call_soon(upstream.data_received, server_reply.pop())

    relay._connecting = (service.target(), ("127.0.0.1", 9))
    upstream.connection_made(MemoryTransport(server_got))

    async def exchange(data: bytes, reply: bytes) -> None:
        answered[:] = [loop.create_future()]
        server_reply[:] = [reply]
        loop.call_soon(client.data_received, data)  # from a loop callback, as a socket's read
        await answered[0]

    await exchange(STARTUP, STARTED)
    for i in range(warmup):
        await exchange(query(i % 100000 + 1), ANSWER)
    payloads = [query(i % 100000 + 1) for i in range(queries)]
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    for payload in payloads:
        await exchange(payload, ANSWER)
    elapsed = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    if protocol != "tcp":
        recorded = service.counters.requests
        following = relay.following
        assert following is not None and following.active, "the follower lost sync"
        assert recorded >= queries, f"only {recorded} statements recorded"
    upstream.connection_lost(None)
    client.connection_lost(None)
    await engine.stop()
    return elapsed / queries * 1e6


def instructions(protocol: str, faults: bool) -> int:
    """Instructions per query (see the module's docstring)."""

    def arguments(queries: int) -> list[str]:
        return ["--rounds", "1", "--warmup", "500", "--queries", str(queries),
                "--protocol", protocol, *(["--faults"] if faults else [])]

    return instructions_per(__file__, arguments, 1000, 4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocol", default="postgres", choices=("postgres", "tcp"))
    parser.add_argument("--faults", action="store_true",
                        help="arm a statement fault that never matches (the gated path)")
    parser.add_argument("--warmup", type=int, default=2000, help="queries before timing")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per query under valgrind (steady)")
    args = parser.parse_args()
    if args.instructions:
        count = instructions(args.protocol, args.faults)
        loop = os.environ.get("DEVAMB_LOOP", "uvloop")
        print(f"{loop}, protocol: {args.protocol}{', faults armed' if args.faults else ''}: "
              f"{count:,} instructions per query")
        return
    figures = []
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.queries, args.protocol, args.profile,
                                          args.faults, args.warmup)))
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    print(f"{loop}, protocol: {args.protocol}{', faults armed' if args.faults else ''}: "
          f"{min(figures):.1f} us CPU per query (best of {args.rounds}; "
          f"all {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
