"""The Python cost of one `pgbench -S` query through a relay, without sockets or other processes.

    python bench/pg_hotpath.py [--queries N] [--rounds 3] [--protocol postgres|tcp] [--profile]
                               [--faults] [--instructions] [--connections N]
                               [--mode simple|extended|prepared]

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
`--connections N` relays N connections, each with a query in every loop turn: with more than
one, the followers read at the turn's end (service/tcp_follow.py `Later`), as in the engine
under pgbench -c 8 (~3.6 chunks a turn there).
`--mode` is pgbench's `-M`: `simple` sends the Query above; `extended` the unnamed statement's
Parse, Bind (the aid as a text parameter), Describe (portal), Execute and Sync in one chunk, as
libpq's PQsendQueryParams does (the answer: ParseComplete, BindComplete, then as above);
`prepared` a statement Parsed once (on the warm-up's first query) and then Bind, Describe,
Execute, Sync per query (PQsendQueryPrepared; what psycopg and asyncpg send for a statement
they reuse), answered without the ParseComplete.
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

from devamb.engine import collector
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


SELECT = b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0"


def _bind(statement: bytes, aid: int) -> bytes:
    """Bind, Describe (portal), Execute, Sync: one query of `statement` with `aid` bound."""
    value = str(aid).encode()
    return (_message(b"B", b"\0" + statement + b"\0\0\0\0\1" + len(value).to_bytes(4) + value
                     + b"\0\1\0\0")
            + _message(b"D", b"P\0") + _message(b"E", b"\0\0\0\0\0") + _message(b"S", b""))


def extended(aid: int) -> bytes:
    """pgbench -M extended's query: the unnamed statement parsed, bound, described, executed."""
    return _message(b"P", b"\0" + SELECT + b"\0\0") + _bind(b"", aid)


def prepared(aid: int) -> bytes:
    """pgbench -M prepared's query (after the statement's Parse): bound, described, executed."""
    return _bind(b"P0_1", aid)


PREPARE = _message(b"P", b"P0_1\0" + SELECT + b"\0\0")  # (before the first `prepared`)

STARTED = (_message(b"R", b"\0\0\0\0") + _message(b"S", b"server_version\x0015.8\0")
           + _message(b"K", b"\0\0\x12\x34\0\0\x56\x78") + _message(b"Z", b"I"))
ANSWER = (_message(b"T", b"\0\1abalance\0" + b"\0\0\x40\x02\0\3\0\0\0\x17\0\4\xff\xff\xff\xff\0\0")
          + _message(b"D", b"\0\1\0\0\0\x01" + b"0")
          + _message(b"C", b"SELECT 1\0") + _message(b"Z", b"I"))
BIND_COMPLETE = _message(b"2", b"")
ANSWERS = {"simple": ANSWER, "extended": _message(b"1", b"") + BIND_COMPLETE + ANSWER,
           "prepared": BIND_COMPLETE + ANSWER}
QUERIES = {"simple": query, "extended": extended, "prepared": prepared}


async def run(queries: int, protocol: str, profile: bool, faults: bool,
              warmup: int = 2000, connections: int = 1, mode: str = "simple") -> float:
    folder = Path(tempfile.mkdtemp(prefix="devamb-pg-hotpath-"))
    path = folder / "devamb.yaml"
    armed = ("    faults:\n      never: {kind: latency, delay: 5ms, match: {sql: 'no such "
             "statement'}}\n") if faults else ""
    path.write_text(f"services:\n  db:\n    listen: 0\n    protocol: {protocol}\n{armed}"
                    "    targets:\n      local: tcp://127.0.0.1:9\n")
    engine = Engine(load_profile(path))
    await engine.start()
    collector.settle()  # as engine/runner.py does once the engine is ready
    loop = asyncio.get_running_loop()
    listener = engine.lifecycle.listeners["db"]
    service = engine.services["db"]
    answered: list[asyncio.Future[None]] = []
    unanswered = [0]  # connections whose client has not had its ReadyForQuery yet
    server_reply: list[bytes] = []  # what the server answers the next chunk it gets
    ready: list[_Side] = []  # upstream sides with an answer to read in the next turn

    def client_got(data: bytes) -> None:
        if data.endswith(b"Z\0\0\0\x05I") and answered and not answered[0].done():
            unanswered[0] -= 1
            if not unanswered[0]:
                answered[0].set_result(None)

    def server_reads() -> None:  # one loop turn: every upstream socket with its answer in
        sides = ready[:]
        ready.clear()
        for side in sides:
            side.data_received(server_reply[0])

    relays = []
    for _ in range(connections):
        relay = _Relay(listener)
        client = _Side(relay, True)
        client.connection_made(MemoryTransport(client_got))
        for task in list(listener.pending):  # `begin` would dial the target: cancelled
            task.cancel()  # before it runs; an in-memory upstream is linked, as `link` does
        upstream = _Side(relay, False)

        def server_got(data: bytes, upstream: _Side = upstream) -> None:
            if not ready:
                loop.call_soon(server_reads)
            ready.append(upstream)

        relay._connecting = (service.target(), ("127.0.0.1", 9))
        upstream.connection_made(MemoryTransport(server_got))
        relays.append((relay, client, upstream))

    async def exchange(payloads: list[bytes], reply: bytes) -> None:
        answered[:] = [loop.create_future()]
        unanswered[0] = len(payloads)
        server_reply[:] = [reply]

        def client_reads() -> None:  # one loop turn: every client socket with its chunk in
            for (_, client, _), data in zip(relays, payloads, strict=True):
                client.data_received(data)

        loop.call_soon(client_reads)  # from a loop callback, as a socket's read
        await answered[0]

    await exchange([STARTUP] * connections, STARTED)
    make, answer = QUERIES[mode], ANSWERS[mode]
    if mode == "prepared":  # the statement parsed with the first query, as pgbench does
        await exchange([PREPARE + prepared(1)] * connections,
                       _message(b"1", b"") + answer)
    for i in range(warmup // connections):
        await exchange([make(i % 100000 + 1)] * connections, answer)
    rounds = max(queries // connections, 1)
    payloads = [[make((i * connections + c) % 100000 + 1) for c in range(connections)]
                for i in range(rounds)]
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    for payload in payloads:
        await exchange(payload, answer)
    elapsed = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    if protocol != "tcp":
        recorded = service.counters.requests
        for relay, _, _ in relays:
            following = relay.following
            assert following is not None and following.active, "the follower lost sync"
        assert recorded >= rounds * connections, f"only {recorded} statements recorded"
    for _, client, upstream in relays:
        upstream.connection_lost(None)
        client.connection_lost(None)
    await engine.stop()
    return elapsed / (rounds * connections) * 1e6


def instructions(protocol: str, faults: bool, connections: int = 1, mode: str = "simple") -> int:
    """Instructions per query (see the module's docstring)."""

    def arguments(queries: int) -> list[str]:
        return ["--rounds", "1", "--warmup", "500", "--queries", str(queries),
                "--protocol", protocol, "--connections", str(connections),
                "--mode", mode, *(["--faults"] if faults else [])]

    return instructions_per(__file__, arguments, 1000, 4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocol", default="postgres", choices=("postgres", "tcp"))
    parser.add_argument("--faults", action="store_true",
                        help="arm a statement fault that never matches (the gated path)")
    parser.add_argument("--warmup", type=int, default=2000, help="queries before timing")
    parser.add_argument("--connections", type=int, default=1,
                        help="connections relayed together, each with a query in every turn "
                        "(more than one: the followers read at the turn's end, tcp_follow.Later)")
    parser.add_argument("--mode", default="simple", choices=tuple(QUERIES),
                        help="pgbench's -M: a simple Query, or the extended protocol's messages "
                        "(extended: Parse each time; prepared: parsed once)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per query under valgrind (steady)")
    args = parser.parse_args()
    if args.instructions:
        count = instructions(args.protocol, args.faults, args.connections, args.mode)
        loop = os.environ.get("DEVAMB_LOOP", "uvloop")
        mode = f", {args.mode}" if args.mode != "simple" else ""
        print(f"{loop}, protocol: {args.protocol}{mode}{', faults armed' if args.faults else ''}"
              f"{f', {args.connections} connections' if args.connections > 1 else ''}: "
              f"{count:,} instructions per query")
        return
    figures = []
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.queries, args.protocol, args.profile,
                                          args.faults, args.warmup, args.connections,
                                          args.mode)))
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    mode = f", {args.mode}" if args.mode != "simple" else ""
    print(f"{loop}, protocol: {args.protocol}{mode}{', faults armed' if args.faults else ''}"
          f"{f', {args.connections} connections' if args.connections > 1 else ''}: "
          f"{min(figures):.1f} us CPU per query (best of {args.rounds}; "
          f"all {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
