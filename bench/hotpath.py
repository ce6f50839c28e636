"""The Python cost of one proxied HTTP exchange, without sockets or other processes.

    python bench/hotpath.py [--requests N] [--profile]      (DEVAMB_LOOP=uvloop|asyncio)
    python bench/hotpath.py --instructions [--steady]       (needs valgrind)
    python bench/hotpath.py --large [--instructions]        (a 1 MiB response in 256 KiB reads)

A real engine (profile, listener, recorder, URL target) serves requests fed straight into its
front-end Protocol through an in-memory transport; the upstream is an `UpstreamConnection`
whose transport answers every request with a canned nginx-like 1 KiB response. What is timed
is devamb's own work per exchange: parsing both sides, routing, recording, writing. No kernel,
no scheduler, no other process: the figure moves by a few percent between runs where the
wrk-driven `run.py` moves by tens, so it is the one to compare two versions of the hot path
with (`--profile` adds a cProfile listing).

`--instructions` counts instead of timing: the CPU instructions of one exchange, from
valgrind's cachegrind run over 500 and 4,500 exchanges (the difference over 4,000, so that
start-up cancels out; hash seed fixed). The count does not move with the machine's load: it is
the figure to compare two versions with on a busy machine (it misses cache and memory effects,
which the timed figure has). A full garbage collection falling on one side of the boundary moves
it by a few thousand instructions (recording off, or asyncio's loop, up to ~25k); `--steady`
counts 1,000 and 9,000 exchanges after a warm-up of 1,000 (twice the time), which moves by less
than 1k.

`--large` answers 1 MiB instead (as bench/run.py's 1 MiB case: 4 reads of 256 KiB, the first
with the head): the cost of a big body's relay, its copies included.
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

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.runner import loop_factory
from devamb.proxy.front import FrontProtocol
from devamb.proxy.upstream import UpstreamConnection

REQUEST = (
    b"GET /1k HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
)
BODY = os.urandom(1024)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 19:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
    b"Last-Modified: Thu, 26 Nov 2026 18:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6766a2c0-400"\r\nAccept-Ranges: bytes\r\n\r\n' + BODY
)


LARGE_BODY = os.urandom(1024 * 1024)
LARGE = RESPONSE.replace(b"Content-Length: 1024", b"Content-Length: %d" % len(LARGE_BODY))
LARGE = LARGE[: -len(BODY)] + LARGE_BODY
READ = 256 * 1024  # what one socket read of uvloop's gives at most
LARGE_READS = [LARGE[at:at + READ] for at in range(0, len(LARGE), READ)]


class MemoryTransport(asyncio.Transport):
    """A transport whose writes go to a callback; always writable, never closing."""

    def __init__(self, on_write) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.on_write = on_write

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self.on_write(data)  # (not copied: a socket's write needs no copy when it all fits)

    def writelines(self, parts) -> None:  # type: ignore[no-untyped-def]
        for part in parts:  # (a socket's writev: no join)
            self.on_write(part)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class Reads(MemoryTransport):
    """An upstream's transport whose response is all in the socket: read by read, one loop
    callback each, and none while the protocol has reading paused (as uvloop's reads go)."""

    def __init__(self, reads: list[bytes]) -> None:
        super().__init__(self._answer)
        self.reads = reads
        self.protocol: UpstreamConnection | None = None
        self.pending: list[bytes] = []
        self.paused = False

    def _answer(self, _request: bytes) -> None:
        self.pending = list(reversed(self.reads))
        self._next()

    def _next(self) -> None:
        if self.pending and not self.paused:
            asyncio.get_running_loop().call_soon(self._read)

    def _read(self) -> None:
        if self.pending and not self.paused:
            deliver(self.protocol, self.pending.pop())
            self._next()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self._next()


def deliver(protocol: asyncio.BaseProtocol | None, read: bytes) -> None:
    """One socket read handed over as uvloop does: into the protocol's own buffer when it is
    a BufferedProtocol, else as a bytes object copied out of the loop's read buffer."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        protocol.get_buffer(len(read))[:len(read)] = read  # (the kernel's copy)
        protocol.buffer_updated(len(read))
    else:
        protocol.data_received(bytes(memoryview(read)))  # type: ignore[union-attr]


async def run(requests: int, profile: bool, recording: bool = True, warmup: int = 2000,
              large: bool = False) -> float:
    folder = Path(tempfile.mkdtemp(prefix="devamb-hotpath-"))
    path = folder / "devamb.yaml"
    inspect = "" if recording else "    inspect: {bodies: 0, keep: 0}\n"
    path.write_text("services:\n  api:\n    listen: 0\n" + inspect + "    targets:\n"
                    "      up: http://127.0.0.1:9\n")
    engine = Engine(load_profile(path))
    await engine.start()
    loop = asyncio.get_running_loop()
    upstream = UpstreamConnection()
    reads = Reads(LARGE_READS if large else [RESPONSE])
    reads.protocol = upstream
    upstream.connection_made(reads)

    target = engine.services["api"].target()
    # the one kept-alive connection: taken from the pool and put back as a real one is
    target._pool._idle.append(upstream)  # type: ignore[attr-defined,union-attr]
    listener = engine.lifecycle.listeners["api"]
    answered: list[asyncio.Future[None]] = []

    tail = (LARGE_BODY if large else BODY)[-64:]

    def client_got(data: bytes) -> None:
        if data[-64:] == tail and answered and not answered[0].done():
            answered[0].set_result(None)

    front = FrontProtocol(listener._server)  # type: ignore[union-attr]
    front.connection_made(MemoryTransport(client_got))

    async def one() -> None:
        answered[:] = [loop.create_future()]
        # from a loop callback, as a socket's read comes: not from inside a task
        loop.call_soon(front.data_received, REQUEST)
        await answered[0]

    for _ in range(warmup):
        await one()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.process_time()  # CPU time: less moved by other jobs than the wall clock
    for _ in range(requests):
        await one()
    elapsed = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        order, top = os.environ.get("SORT", "tottime"), int(os.environ.get("TOP", "30"))
        pstats.Stats(profiler).sort_stats(order).print_stats(top)  # SORT=cumulative TOP=60
    front.connection_lost(None)
    await engine.stop()
    return elapsed / requests * 1e6


def instructions(recording: bool, large: bool, steady: bool = False) -> int:
    """Instructions per exchange (see the module's docstring)."""
    few, many = (50, 450) if large else (1000, 9000) if steady else (500, 4500)
    warmup = 1000 if steady and not large else few

    def arguments(requests: int) -> list[str]:
        return ["--rounds", "1", "--warmup", str(warmup), "--requests", str(requests),
                *([] if recording else ["--no-recording"]), *(["--large"] if large else [])]

    return instructions_per(__file__, arguments, few, many)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2000, help="exchanges before timing")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-recording", action="store_true",
                        help="keep no exchanges and no body previews (inspect: bodies 0, keep 0)")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per exchange under valgrind (steady)")
    parser.add_argument("--steady", action="store_true",
                        help="--instructions over 1,000 and 9,000 exchanges after 1,000")
    parser.add_argument("--large", action="store_true",
                        help="a 1 MiB response in 256 KiB reads (default: 1 KiB in one read)")
    args = parser.parse_args()
    size = "1 MiB" if args.large else "1 KiB"
    if args.instructions:
        count = instructions(not args.no_recording, args.large, args.steady)
        loop = os.environ.get("DEVAMB_LOOP", "uvloop")
        print(f"{loop}{', recording off' if args.no_recording else ''}: "
              f"{count:,} instructions per {size} exchange")
        return
    if args.large and args.requests == parser.get_default("requests"):
        args.requests, args.warmup = 2000, 200
    figures = []
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.requests, args.profile, not args.no_recording,
                                         args.warmup, args.large)))
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    loop += ", recording off" if args.no_recording else ""
    print(f"{loop}: {min(figures):.1f} us CPU per {size} exchange (best of {args.rounds}; "
          f"all {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
