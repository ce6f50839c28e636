"""System calls per unary gRPC call of a real engine under grpcio at c1 (strace -c).

    python bench/grpc_syscalls.py [TREE] [--seconds 3]

The engine (TREE's devamb, default this tree's; a `grpc` service under uvloop on the proxy
CPU) relays unary calls from a grpcio client to a grpcio upstream (both on the load CPU), as
`http2.py --grpc` does at c1; once the channel is warm, `strace -c -f` is attached to the
engine for `--seconds` of calls and each system call's count is divided by the calls made
meanwhile. A c1 relay needs two reads, two writes and two epoll waits a call (one wake per
leg); each turn of the loop more is an epoll_pwait of its own. Needs strace (Debian `strace`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from http2 import HOST, profile, start_upstream
from peers import LOAD_CPU, PROXY_CPU, REPO
from procs import Children, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", type=Path, default=Path(REPO))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    import grpc

    root = Path(tempfile.mkdtemp(prefix="devamb-grpc-syscalls-"))
    out = root / "strace.txt"
    with Children(root) as children:
        upstream = start_upstream(children, "grpc")
        port = free_port()
        (root / "devamb.yaml").write_text(profile(free_port(), port, free_port(), upstream))
        engine = children.spawn(
            "devamb", [sys.executable, "-m", "devamb", "up", "--headless",
                       str(root / "devamb.yaml")], cpu=PROXY_CPU,
            env={"DEVAMB_LOOP": "uvloop", "PYTHONPATH": str(args.tree.resolve())}, cwd=root)
        children.wait_listening(engine, [port])
        os.sched_setaffinity(0, {LOAD_CPU} & os.sched_getaffinity(0) or os.sched_getaffinity(0))
        channel = grpc.insecure_channel(f"{HOST}:{port}")
        ping = channel.unary_unary("/bench.Ping/Ping")
        message = b"0123456789abcdef"
        for _ in range(1000):  # warm-up (and the upstream connection made)
            ping(message, timeout=10)
        tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(engine.pid), "-o", str(out)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached (the engine idles meanwhile)
        calls, stop = 0, time.perf_counter() + args.seconds
        while time.perf_counter() < stop:
            ping(message, timeout=10)
            calls += 1
        time.sleep(0.2)
        tracer.terminate()
        tracer.wait()
        channel.close()
    counts = {}
    for line in out.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit():
            counts[fields[-1]] = int(fields[3])
    shown = {name: n / calls for name, n in counts.items() if n / calls >= 0.01}
    print(f"{args.tree}: {calls} calls; per call: "
          + ", ".join(f"{name} {n:.2f}" for name, n in sorted(shown.items(), key=lambda x: -x[1])
                      if name != "clock_nanosleep"))


if __name__ == "__main__":
    main()
