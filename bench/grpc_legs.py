"""devamb's own wall time on a unary gRPC call's path, in a real engine under grpcio at c1.

    python bench/grpc_legs.py [--tree PATH] [--runs 1] [--seconds 1.5]

The engine (a `grpc` service under uvloop on the proxy CPU, the grpcio client and upstream on
the load CPU, as bench/http2.py) runs with timestamps added around its reads and writes: the
request leg (the client's request read -> the request written upstream) and the answer leg
(the upstream's answer read -> the answer written to the client). They are devamb's part of
the added latency, without the hop itself and without the other processes' legs, so they
move less with a shared machine's load than the added p50 does (printed too, with direct).
`--tree`: the devamb package to run (another checkout, e.g. `git archive REV devamb`).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def engine(marks_path: str, argv: list[str]) -> None:
    """Run the devamb CLI with marks per call, written to `marks_path` every 500 calls."""
    from devamb.proxy import h2conn, h2front, h2upstream
    from devamb.service import http2

    marks: list[dict[str, float]] = []
    current: dict[str, float] = {}
    clock = time.perf_counter

    def wrap_read(cls: Any, key: str) -> None:
        read = cls.data_received

        def data_received(self: Any, data: bytes) -> None:
            if data:  # (not the engine's own call with nothing read)
                current.setdefault(key, clock())
            read(self, data)
        cls.data_received = data_received

    wrap_read(h2front.H2FrontConnection, "in")
    wrap_read(h2upstream.H2UpstreamConnection, "answer")
    flush_now = h2conn.H2Endpoint.flush_now

    def flush(self: Any) -> None:
        pending = bool(self.conn._data_to_send)
        flush_now(self)
        if pending:
            up = isinstance(self, h2upstream.H2UpstreamConnection)
            current.setdefault("up" if up else "out", clock())
    h2conn.H2Endpoint.flush_now = flush  # type: ignore[method-assign]
    stream = http2.Http2Listener._stream

    async def call(self: Any, front: Any, remote: Any) -> None:
        await stream(self, front, remote)
        if len(current) == 4:
            marks.append(dict(current))
        current.clear()
        if len(marks) % 500 == 0:
            Path(marks_path).write_text(json.dumps(marks))
    http2.Http2Listener._stream = call  # type: ignore[method-assign]
    # the engine's own process, which `devamb up --headless` execs (a CLI run here would exec
    # it too, and lose the hooks above)
    sys.argv = ["devamb.engine", *argv]
    runpy.run_module("devamb.engine", run_name="__main__")


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    return " ".join(f"{name} {ordered[int(len(ordered) * q)] * 1e6:4.0f}"
                    for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--engine", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine is not None:
        engine(args.engine[0], args.engine[1:])
        return
    from http2 import grpc_run, profile, start_upstream
    from peers import PROXY_CPU
    from procs import Children, free_port

    root = Path(tempfile.mkdtemp(prefix="devamb-grpc-legs-"))
    marks = root / "marks.json"
    with Children(root) as children:
        upstream = start_upstream(children, "grpc")
        port = free_port()
        (root / "devamb.yaml").write_text(profile(free_port(), port, free_port(), upstream))
        proxy = children.spawn(
            "devamb", [sys.executable, __file__, "--engine", str(marks), str(root / "devamb.yaml")],
            cpu=PROXY_CPU, cwd=root,
            env={"DEVAMB_LOOP": "uvloop", "PYTHONPATH": str(args.tree.resolve())})
        children.wait_listening(proxy, [port])
        for _ in range(args.runs):
            direct = grpc_run(upstream, 1, args.seconds)["p50_ms"]
            through = grpc_run(port, 1, args.seconds)["p50_ms"]
            print(f"p50 direct {direct:.3f} ms, through devamb {through:.3f} ms, added "
                  f"{through - direct:.3f} ms (load {os.getloadavg()[0]:.1f})")
        time.sleep(0.3)
    calls = json.loads(marks.read_text())[300:]  # (after the warm-up)
    print(f"{len(calls)} calls ({args.tree}); devamb's legs in us:")
    print(f"  request in -> upstream write: {quantiles([c['up'] - c['in'] for c in calls])}")
    print(f"  answer in -> client write:    {quantiles([c['out'] - c['answer'] for c in calls])}")


if __name__ == "__main__":
    main()
