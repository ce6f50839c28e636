"""The Python cost of one proxied HTTP/2 call, without sockets or other processes.

    python bench/h2hotpath.py [--mode m100|c1|grpc|grpc-net] [--requests N] [--profile]
                              [--window-updates] [--instructions]

A real engine (profile, http2 or grpc service, recorder, URL target) relays calls fed straight
into its front-end Protocol through an in-memory transport; its upstream connection writes to
an in-memory peer that answers every request with ready frames (1 KiB, or a unary gRPC answer
with trailers). The client's and the upstream's frames are built once (HPACK blocks as a peer
sends them after the first: indexed), so what is timed is devamb's own work per call: h2 on
both sides, routing, recording. `m100` keeps 100 streams in flight on one connection (h2load
-m100), `c1` one at a time, `grpc` unary calls one at a time (a `grpc` service). CPU time, so
a loaded machine moves it less than wall-clock ratios (see bench/hotpath.py).

`grpc-net` is the real path of a c1 gRPC client: the same engine relays through loopback
sockets, the client and the upstream played by one small process on CPU 0 (bench/h2peer.py:
grpcio's frames, ready-made, a few µs per leg) while the engine runs on CPU 1 and sleeps in
the loop between the legs, as under grpcio. Its CPU per call (user + system, this process)
holds what the in-memory modes leave out: the socket syscalls, and the Python work done by a
process woken from idle twice per call (cold caches: about twice the in-memory figure for the
same Python calls, cProfile call counts being equal); it also prints the round trip's p50
through devamb and with no proxy (the peer's sockets joined), whose difference is devamb's
added p50 for a client that costs nothing.

`--instructions` counts instead of timing: the engine's CPU instructions per call under
valgrind's cachegrind (bench/cachegrind.py: the difference of two runs), which the machine's
load does not move. With `grpc-net` only the engine's process is counted (the peer runs
natively); the socket syscalls' kernel work is not in the count.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hpack
from cachegrind import instructions_per

from devamb.engine import collector
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.runner import loop_factory
from devamb.proxy import h2upstream
from devamb.proxy.h2front import H2FrontConnection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, WINDOW_UPDATE = 0, 1, 4, 8
END_STREAM, ACK, END_HEADERS = 1, 1, 4
BODY = os.urandom(1024)
MESSAGE = b"\x00" + struct.pack(">I", 16) + b"0123456789abcdef"
WINDOW_UPDATES = False  # --window-updates: what grpcio's client and server send per call


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(
        ">I", stream) + payload


def steady_block(headers: list[tuple[str, str]]) -> tuple[bytes, bytes]:
    """A header list's first HPACK block and the one every later repeat gets."""
    encoder = hpack.Encoder()
    return encoder.encode(headers), encoder.encode(headers)


def frames(data: bytes):  # type: ignore[no-untyped-def]
    at = 0
    if data.startswith(PREFACE):
        at = len(PREFACE)
    while at + 9 <= len(data):
        length = int.from_bytes(data[at:at + 3], "big")
        yield data[at + 3], data[at + 4], int.from_bytes(data[at + 5:at + 9], "big") & 0x7FFFFFFF
        at += 9 + length


class MemoryTransport(asyncio.Transport):
    def __init__(self, on_write) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.on_write = on_write

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self.on_write(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def grpc_blocks() -> tuple[tuple[bytes, bytes], ...]:
    """The HPACK blocks (first, steady) of grpcio's unary request, response headers and
    trailers (the names and values grpcio 1.6x sends, grpc-timeout included)."""
    request = steady_block([
        (":path", "/bench.Ping/Ping"), (":authority", "127.0.0.1:8080"), (":method", "POST"),
        (":scheme", "http"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("grpc-accept-encoding", "identity, deflate, gzip"), ("grpc-timeout", "10100m"),
        ("user-agent", "grpc-python/1.85.4 grpc-c/58.0.0 (linux; chttp2)")])
    answer = steady_block([(":status", "200"), ("content-type", "application/grpc"),
                           ("grpc-accept-encoding", "identity, deflate, gzip")])
    trailers = steady_block([("grpc-status", "0"), ("grpc-message", "")])
    return request, answer, trailers


class Upstream:
    """Answers each request the moment its END_STREAM arrives (one read per write)."""

    def __init__(self, grpc: bool) -> None:
        self.grpc = grpc
        if grpc:
            self.blocks = steady_block([(":status", "200"), ("content-type", "application/grpc"),
                                        ("grpc-accept-encoding", "identity,deflate,gzip")])
            self.trailers = steady_block([("grpc-status", "0"), ("grpc-message", "")])
        else:
            self.blocks = steady_block([(":status", "200"), ("content-type",
                                        "application/octet-stream"), ("content-length", "1024")])
        self.answered = 0
        self.protocol: h2upstream.H2UpstreamConnection | None = None
        self.legs: list[list[float]] | None = None  # --legs: [client in, upstream got, ...]

    def answer(self, data: bytes) -> None:
        if self.legs:
            self.legs[-1].append(time.perf_counter())
        assert self.protocol is not None
        self.protocol.data_received(data)

    def got(self, data: bytes) -> None:
        if self.legs:
            self.legs[-1].append(time.perf_counter())
        out = []
        if data.startswith(PREFACE):
            out.append(frame(SETTINGS, 0, 0, b""))
            out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**30)))
        for kind, flags, stream in frames(data):
            if kind == SETTINGS and not flags & ACK:
                out.append(frame(SETTINGS, ACK, 0, b""))
            elif (kind == DATA) if self.grpc else (kind == HEADERS and flags & END_STREAM):
                # (a gRPC request is answered at its message: a reflection stream the
                # engine opens does not end its request)
                first = self.answered == 0
                self.answered += 1
                out.append(frame(HEADERS, END_HEADERS, stream, self.blocks[0 if first else 1]))
                if not self.grpc:
                    out.append(frame(DATA, END_STREAM, stream, BODY))
                    continue
                out.append(frame(DATA, 0, stream, MESSAGE))
                out.append(frame(HEADERS, END_HEADERS | END_STREAM, stream,
                                 self.trailers[0 if first else 1]))
                if WINDOW_UPDATES:  # grpcio's, for the request's message: after the
                    # trailers, in the same write, as grpcio 1.85 sends it
                    out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(MESSAGE))))
        if out:
            asyncio.get_running_loop().call_soon(self.answer, b"".join(out))


async def run(mode: str, requests: int, profile: bool, legs: list[list[float]] | None = None
              ) -> float:
    grpc = mode == "grpc"
    folder = Path(tempfile.mkdtemp(prefix="devamb-h2hotpath-"))
    path = folder / "devamb.yaml"
    path.write_text(f"services:\n  api:\n    listen: 0\n    protocol: {'grpc' if grpc else 'http2'}"
                    "\n    targets:\n      up: http://127.0.0.1:9\n")
    engine = Engine(load_profile(path))
    await engine.start()
    if os.environ.get("GC_SETTLE", "1") == "1":
        collector.settle()  # as engine/runner.py does once the engine is ready
    loop = asyncio.get_running_loop()
    upstream = Upstream(grpc)

    async def connect(self: h2upstream.H2Upstream) -> h2upstream.H2UpstreamConnection:
        protocol = h2upstream.H2UpstreamConnection()
        upstream.protocol = protocol
        protocol.connection_made(MemoryTransport(upstream.got))
        return protocol

    h2upstream.H2Upstream._connect = connect  # type: ignore[method-assign]
    if grpc:
        request = [(":method", "POST"), (":scheme", "http"), (":path", "/bench.Ping/Ping"),
                   (":authority", "127.0.0.1:8080"), ("te", "trailers"),
                   ("content-type", "application/grpc"), ("user-agent", "grpc-python/1.66"),
                   ("grpc-accept-encoding", "identity,deflate,gzip")]
    else:
        request = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:8080"),
                   (":path", "/1k"), ("user-agent", "h2load nghttp2/1.52.0")]
    blocks = steady_block(request)
    listener = engine.lifecycle.listeners["api"]
    in_flight = 100 if mode == "m100" else 1
    state = {"next": 1, "done": 0, "sent": 0, "target": 0}
    finished = loop.create_future()
    front: H2FrontConnection

    def requests_for(count: int) -> bytes:
        out = []
        for _ in range(count):
            stream = state["next"]
            state["next"] += 2
            block = blocks[0 if stream == 1 else 1]
            if grpc and WINDOW_UPDATES and stream > 1:  # grpcio's, for the answer before
                credit = struct.pack(">I", len(MESSAGE))
                out.append(frame(WINDOW_UPDATE, 0, 0, credit))
                out.append(frame(WINDOW_UPDATE, 0, stream - 2, credit))
            if grpc:
                out.append(frame(HEADERS, END_HEADERS, stream, block))
                out.append(frame(DATA, END_STREAM, stream, MESSAGE))
            else:
                out.append(frame(HEADERS, END_HEADERS | END_STREAM, stream, block))
        state["sent"] += count
        return b"".join(out)

    def client_got(data: bytes) -> None:
        if upstream.legs:
            upstream.legs[-1].append(time.perf_counter())
        ended = 0
        out = []
        for kind, flags, _stream in frames(data):
            if kind == SETTINGS and not flags & ACK:
                out.append(frame(SETTINGS, ACK, 0, b""))
            elif flags & END_STREAM and kind in (DATA, HEADERS):
                ended += 1
        state["done"] += ended
        if state["done"] >= state["target"] and ended:
            if not finished.done():
                finished.set_result(None)
            return
        more = min(ended, state["target"] - state["sent"])
        if more > 0:
            out.append(requests_for(more))
        if out:
            loop.call_soon(send, b"".join(out))

    def send(data: bytes) -> None:
        if upstream.legs is not None:
            upstream.legs.append([time.perf_counter()])
        front.data_received(data)

    async def batch(count: int) -> None:
        nonlocal finished
        finished = loop.create_future()
        state["target"] = state["done"] + count
        start = state["sent"] + min(in_flight, count)
        front.data_received(requests_for(start - state["sent"]))
        await finished

    front = H2FrontConnection(listener._server)  # type: ignore[union-attr]
    front.connection_made(MemoryTransport(client_got))
    front.data_received(PREFACE + frame(SETTINGS, 0, 0, b"") + frame(
        WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**30)))
    await batch(2000)  # warm-up
    upstream.legs = legs
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    await batch(requests)
    elapsed = time.process_time() - started
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime"))
        stats.print_stats(int(os.environ.get("LINES", "35")))
    await asyncio.sleep(0.05)
    left = len(listener._server._tasks)  # type: ignore[union-attr]
    if left:
        print(f"warning: {left} calls still in flight after the last answer", file=sys.stderr)
    front.connection_lost(None)
    await engine.stop()
    return elapsed / requests * 1e6


async def run_net(requests: int, profile: bool) -> tuple[float, str]:
    """`grpc-net`: CPU µs per call of this process (the engine), and the peer's round trips."""
    upstream = socket.create_server(("127.0.0.1", 0))
    folder = Path(tempfile.mkdtemp(prefix="devamb-h2hotpath-"))
    path = folder / "devamb.yaml"
    path.write_text("services:\n  api:\n    listen: 0\n    protocol: grpc\n    targets:\n"
                    f"      up: http://127.0.0.1:{upstream.getsockname()[1]}\n")
    engine = Engine(load_profile(path))
    await engine.start()
    collector.settle()
    listener = engine.lifecycle.listeners["api"]
    assert listener.service.bound is not None
    port = listener.service.bound[1]
    os.sched_setaffinity(0, {1} & os.sched_getaffinity(0) or os.sched_getaffinity(0))
    here = Path(__file__).resolve().parent
    peer = await asyncio.create_subprocess_exec(
        sys.executable, str(here / "h2peer.py"), str(port), str(upstream.fileno()),
        str(requests + 1000), pass_fds=(upstream.fileno(),), stdout=asyncio.subprocess.PIPE)
    served = listener._server  # type: ignore[union-attr]
    while len(served.connections) == 0 or engine_calls(engine) < 1000:  # warm-up
        await asyncio.sleep(0.05)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    began, started, times = engine_calls(engine), time.process_time(), os.times()
    out, _ = await peer.communicate()
    elapsed = time.process_time() - started
    calls = max(engine_calls(engine) - began, 1)
    spent = os.times()
    system = (spent.system - times.system) / calls * 1e6
    user = (spent.user - times.user) / calls * 1e6
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime"))
        stats.print_stats(int(os.environ.get("LINES", "35")))
    upstream.close()
    await engine.stop()
    trips = f"{out.decode().strip()}; CPU us per call: user {user:.0f}, system {system:.0f}"
    return elapsed / calls * 1e6, trips


def engine_calls(engine: Engine) -> int:
    return engine.lifecycle.listeners["api"].service.counters.requests  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("m100", "c1", "grpc", "grpc-net"),
                        default="m100")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--legs", action="store_true",
                        help="c1/grpc: also the wall time of the legs on the call's critical path "
                             "(client's request in -> upstream write, upstream's answer in -> "
                             "client write), medians")
    parser.add_argument("--window-updates", action="store_true",
                        help="grpc: the WINDOW_UPDATE frames grpcio sends with each call "
                             "(client: connection and previous stream; server: connection)")
    parser.add_argument("--instructions", action="store_true",
                        help="count the engine's CPU instructions per call under valgrind")
    args = parser.parse_args()
    if args.instructions:
        def arguments(requests: int) -> list[str]:
            return ["--mode", args.mode, "--requests", str(requests), "--rounds", "1",
                    *(["--window-updates"] if args.window_updates else [])]
        count = instructions_per(__file__, arguments, 1000, 3000)
        print(f"{args.mode}{' (window updates)' if args.window_updates else ''}: "
              f"{count:,} instructions per call")
        return
    global WINDOW_UPDATES
    WINDOW_UPDATES = args.window_updates
    figures = []
    if args.mode == "grpc-net":
        for _ in range(args.rounds):
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                cpu, trips = runner.run(run_net(args.requests, args.profile))
            figures.append(cpu)
            print(f"round trip (us): {trips}")
    for _ in range(args.rounds if args.mode != "grpc-net" else 0):
        legs: list[list[float]] | None = [] if args.legs else None
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures.append(runner.run(run(args.mode, args.requests, args.profile, legs)))
        if legs:
            whole = [leg for leg in legs if len(leg) >= 4]
            into = sorted(leg[1] - leg[0] for leg in whole)
            out = sorted(leg[-1] - leg[-2] for leg in whole)
            print(f"legs: in {into[len(into) // 2] * 1e6:.1f} us, out "
                  f"{out[len(out) // 2] * 1e6:.1f} us (medians of {len(whole)})")
    loop = os.environ.get("DEVAMB_LOOP", "uvloop")
    print(f"{args.mode} ({loop}): {min(figures):.1f} us CPU per call (best of {args.rounds}; "
          f"all {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
