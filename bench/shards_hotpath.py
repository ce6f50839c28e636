"""The Python cost of one command through the sharded Redis target, without sockets.

    python bench/shards_hotpath.py [--pipeline 16] [--clients 8] [--commands N] [--profile]
    python bench/shards_hotpath.py --instructions [--pipeline 16] [--clients 8]  (needs valgrind)

A real engine (profile, listener, recorder, a `shards:` target with `key: redis` over two
shards) serves `--clients` connections, each sent `--pipeline` redis-benchmark GETs or SETs
(random keys) per round in one read; the clients' and the shards' sockets are in-memory
transports (a client's bytes go in through the relay's own Protocol, as a socket's would), and
each shard answers what was written to it at once, in one chunk. What is timed (CPU) is
devamb's work per command: the client's read, parsing, routing, the shard writes, reading the
replies, the client writes and the connection's record. Compare two versions of the target's
hot path with it; `bench/redis_shards.py` gives the throughput with real clients and twemproxy.

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
import random
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

PROFILE = """\
services:
  cache:
    listen: 0
    protocol: tcp
    targets:
      sharded: {shards: [tcp://127.0.0.1:7001, tcp://127.0.0.1:7002], key: redis}
"""


def command(name: bytes, key: bytes) -> bytes:
    if name == b"SET":
        return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (len(key), key)
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)


async def run(commands: int, pipeline: int, clients: int, profile: bool,
              warmup: int = 2000) -> float:
    folder = Path(tempfile.mkdtemp(prefix="devamb-shards-hotpath-"))
    path = folder / "devamb.yaml"
    path.write_text(PROFILE)
    engine = Engine(load_profile(path))
    await engine.start()
    target = engine.services["cache"].target()
    written: list[tuple[object, bytes]] = []
    for link in target._links.values():  # type: ignore[attr-defined]
        link.connection_made(MemoryTransport(lambda data, link=link: written.append((link, data))))
    rng = random.Random(1)
    batches = {
        name: [b"".join(command(name, b"key:%012d" % rng.randrange(100_000))
                        for _ in range(pipeline)) for _ in range(64)]
        for name in (b"SET", b"GET")
    }
    listener = engine.lifecycle.listeners["cache"]
    sessions = []
    replied = [0]

    def reply(data: bytes) -> None:
        replied[0] += data.count(b"\r\n")

    for _ in range(clients):  # each connection as the listener makes it: relay, exchange, task
        side = _Side(_Relay(listener), True)  # type: ignore[arg-type]
        side.connection_made(MemoryTransport(reply))
        sessions.append(side)
    await asyncio.sleep(0)

    async def rounds(count: int) -> None:
        for i in range(count):
            name = b"SET" if i % 2 == 0 else b"GET"
            for c, client in enumerate(sessions):
                client.data_received(batches[name][(i + c) % 64])
            for _ in range(3):  # the sessions read and dispatch, the links write
                await asyncio.sleep(0)
            chunks = list(written)
            written.clear()
            for link, data in chunks:  # each shard answers what it got, in one chunk
                sets, gets = data.count(b"\r\nSET\r\n"), data.count(b"\r\nGET\r\n")
                link.data_received(b"+OK\r\n" * sets + b"$3\r\nxxx\r\n" * gets)  # type: ignore[attr-defined]
            await asyncio.sleep(0)

    await rounds(max(warmup // (pipeline * clients), 4))
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    count = max(commands // (pipeline * clients), 2)
    started = time.process_time()
    await rounds(count)
    elapsed = time.process_time() - started
    assert replied[0] >= count * pipeline * clients, "the clients were not answered"
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    for client in sessions:
        client.connection_lost(None)
    await asyncio.sleep(0)
    await engine.stop()
    return elapsed / (count * pipeline * clients) * 1e6


def instructions(pipeline: int, clients: int) -> int:
    """Instructions per command (see the module's docstring)."""

    def arguments(commands: int) -> list[str]:
        return ["--rounds", "1", "--pipeline", str(pipeline), "--clients", str(clients),
                "--commands", str(commands)]

    unit = pipeline * clients  # commands per round: whole rounds, so that the count is exact
    few = -(-2000 // unit) * unit
    return instructions_per(__file__, arguments, few, few + -(-10_000 // unit) * unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per command under valgrind (steady)")
    args = parser.parse_args()
    if args.instructions:
        count = instructions(args.pipeline, args.clients)
        print(f"shards target, P{args.pipeline}, {args.clients} clients: {count:,} "
              "instructions per command")
        return
    figures = []
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.commands, args.pipeline, args.clients,
                                          args.profile)))
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    print(f"shards target, P{args.pipeline}, {args.clients} clients, {loop}: "
          f"{min(figures):.2f} us CPU per command (best of {args.rounds}; all "
          f"{', '.join(f'{f:.2f}' for f in figures)})")


if __name__ == "__main__":
    main()
