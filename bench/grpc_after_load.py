"""Is a devamb engine that has relayed bench/http2.py's h2load cases slower for gRPC c1 calls?

    python bench/grpc_after_load.py [--pairs 6] [--duration 3] [--warm 6000]
    python bench/grpc_after_load.py --instructions 1000 [--cache] [--warm 5100] [--keep]

bench/http2.py runs its gRPC cases in the engine that relayed its h2load cases just before, and
its c1 figures there were worse than in `--grpc` runs (a fresh engine), but those runs were on
different occasions, under whatever else the machine ran then. This bench compares the two
states at the same time: two engines (the same profile, the same upstreams, both on the proxy
CPU), both warmed with the same gRPC calls (their gRPC record ring full), then only the second
one relays the h2load cases (1 connection x 100 streams, then 32 connections, as in http2.py);
then gRPC c1 ping-pongs go through the two in turn, `--pairs` times (order alternating), each
time measuring p50 and the engine's CPU per call. The report gives each engine's medians and
the median of the per-pair ratios (loaded / fresh): a drift in the machine's load moves both
sides of a pair alike.

`--instructions N` counts instead of timing: both engines run under valgrind's callgrind (as
bench/cachegrind.py, the hash seed fixed), the h2load cases send a fixed number of requests
(6,000 each: the h2 service's 5,000 kept records full), and each engine's instructions over N
gRPC c1 calls are read from a callgrind dump (counters zeroed just before): what the machine's
load does not move. The kernel's work (syscalls, page faults) is not in the count. With
`--cache` the engines run uninstrumented until the measure (faster), then callgrind's cache
simulation adds the L1 and last-level misses of the engine's own footprint (a larger or more
scattered heap would show there, not other processes' use of the caches).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from http2 import H2LOAD_CASES, grpc_run, profile, progress, start_upstream
from peers import LOAD_CPU, PROXY_CPU, REPO
from procs import HOST, Children, cpu_seconds, free_port, pinned

HERE = Path(__file__).resolve().parent


def faults_and_times(pid: int) -> tuple[int, float, float]:
    """PID's minor page faults, user and system CPU seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[7]), int(fields[11]) / tick, int(fields[12]) / tick


def grpc_calls(port: int, count: int) -> None:
    import grpc

    channel = grpc.insecure_channel(f"{HOST}:{port}")
    ping = channel.unary_unary("/bench.Ping/Ping")
    for _ in range(count):
        ping(b"0123456789abcdef", timeout=30)
    channel.close()


def start_engines(children: Children, root: Path, h2_up: int, grpc_up: int,
                  callgrind: bool, cache: bool) -> dict[str, tuple[int, int, int]]:
    """The two engines, by name: (pid, h2 port, gRPC port)."""
    env = {"DEVAMB_LOOP": "uvloop", "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    python = os.path.realpath(sys.executable)  # (valgrind follows no exec out of a shim)
    engines: dict[str, tuple[int, int, int]] = {}
    for name in ("fresh", "loaded"):
        h2_port, grpc_port = free_port(), free_port()
        folder = root / name
        folder.mkdir()
        (folder / "devamb.yaml").write_text(profile(h2_port, grpc_port, h2_up, grpc_up))
        valgrind = ["valgrind", "--tool=callgrind", f"--cache-sim={'yes' if cache else 'no'}",
                    *(["--instr-atstart=no"] if cache else []),
                    f"--callgrind-out-file={folder}/callgrind.%p"] if callgrind else []
        child = children.spawn(f"devamb-{name}", [
            # the engine's process, which `up --headless` execs (valgrind follows no exec)
            *valgrind, python, "-m", "devamb.engine", str(folder / "devamb.yaml")],
            cpu=PROXY_CPU, env=env, cwd=folder)
        children.wait_listening(child, [h2_port, grpc_port], timeout=600 if callgrind else 20)
        engines[name] = (child.pid, h2_port, grpc_port)
    return engines


def instructions(pid: int, folder: Path, port: int, calls: int, cache: bool) -> dict[str, float]:
    """Callgrind's events (instructions, and with `cache` simulated cache misses) per gRPC c1
    call through the engine PID, which runs under callgrind."""
    control = ["callgrind_control", "-i", "on"] if cache else ["callgrind_control", "-z"]
    subprocess.run([*control, str(pid)], check=True, capture_output=True)
    grpc_calls(port, min(calls, 200))  # (the simulated caches warmed)
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    grpc_calls(port, calls)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    dumps = sorted(folder.glob(f"callgrind.{pid}.*"), key=lambda p: p.stat().st_mtime)
    text = dumps[-1].read_text(errors="replace")
    events, found = re.search(r"^events:(.*)$", text, re.M), re.search(r"^summary:(.*)$", text,
                                                                        re.M)
    if events is None or found is None:
        raise RuntimeError(f"no summary in {dumps[-1]}")
    return {name: int(value) / calls
            for name, value in zip(events.group(1).split(), found.group(1).split(), strict=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per gRPC measure")
    parser.add_argument("--h2-duration", type=float, default=5.0, help="seconds per h2load case")
    parser.add_argument("--warm", type=int, default=6000, help="gRPC calls through each engine "
                        "first (more than a service's 5,000 kept records)")
    parser.add_argument("--instructions", type=int, metavar="CALLS",
                        help="count instructions per call over CALLS calls (callgrind)")
    parser.add_argument("--cache", action="store_true", help="with --instructions: simulated "
                        "cache misses too (instrumented only for the measure)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dumps)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="devamb-bench-after-load-"))
    try:
        return run(args, root)
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    with Children(root) as children:
        h2_up, grpc_up = start_upstream(children, "h2"), start_upstream(children, "grpc")
        engines = start_engines(children, root, h2_up, grpc_up, bool(args.instructions),
                                args.cache)
        for name, (_, _, grpc_port) in engines.items():
            progress(f"{args.warm} gRPC calls through {name}")
            grpc_calls(grpc_port, args.warm)
        for case, h2args in H2LOAD_CASES.items():
            progress(f"h2load {case} through loaded")
            amount = ["-n", "6000"] if args.instructions else ["-D", f"{args.h2_duration:g}"]
            argv = pinned(["h2load", *h2args, *amount,
                           f"http://{HOST}:{engines['loaded'][1]}/1k"], LOAD_CPU)
            subprocess.run(argv, capture_output=True, check=True, timeout=3600)
        time.sleep(1.0)
        if args.instructions:
            counts = {name: instructions(pid, root / name, grpc_port, args.instructions,
                                         args.cache)
                      for name, (pid, _, grpc_port) in engines.items()}
            print("| event per gRPC c1 call | fresh | loaded | loaded / fresh |\n"
                  "| --- | ---: | ---: | ---: |")
            for event, fresh in counts["fresh"].items():
                loaded = counts["loaded"][event]
                print(f"| {event} | {fresh:,.0f} | {loaded:,.0f} | "
                      f"{loaded / fresh if fresh else float('nan'):.3f} |")
            return 0
        figures = timed(engines, args.pairs, args.duration)
    report(figures, args.pairs)
    return 0


def timed(engines: dict[str, tuple[int, int, int]], pairs: int,
          duration: float) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per engine, per pair: p50 ms, CPU us per call, system CPU us per call, faults per call."""
    figures: dict[str, list[tuple[float, float, float, float]]] = {"fresh": [], "loaded": []}
    for pair in range(pairs):
        order = ["fresh", "loaded"] if pair % 2 == 0 else ["loaded", "fresh"]
        for name in order:
            pid, _, grpc_port = engines[name]
            before, (faults, _, system) = cpu_seconds(pid) or 0.0, faults_and_times(pid)
            result = grpc_run(grpc_port, 1, duration)
            used = (cpu_seconds(pid) or 0.0) - before
            faults_after, _, system_after = faults_and_times(pid)
            calls = result["requests"]
            figures[name].append((result["p50_ms"], used / calls * 1e6,
                                  (system_after - system) / calls * 1e6,
                                  (faults_after - faults) / calls))
            p50, cpu, sys_cpu, faults_per = figures[name][-1]
            progress(f"pair {pair + 1} {name}: p50 {p50:.3f} ms, {cpu:.0f} us CPU/call "
                     f"(system {sys_cpu:.0f}), {faults_per:.2f} page faults/call")
    return figures


def report(figures: dict[str, list[tuple[float, float, float, float]]], pairs: int) -> None:
    print(f"| engine | p50 ms (median of {pairs}) | CPU us/call | system us/call | "
          "minor faults/call |\n| --- | --- | --- | --- | --- |")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(v[0] for v in values):.3f} | "
              f"{statistics.median(v[1] for v in values):.0f} | "
              f"{statistics.median(v[2] for v in values):.0f} | "
              f"{statistics.median(v[3] for v in values):.2f} |")
    pairs_of = list(zip(figures["fresh"], figures["loaded"], strict=True))
    p50 = statistics.median(b[0] / a[0] for a, b in pairs_of)
    cpu = statistics.median(b[1] / a[1] for a, b in pairs_of)
    print(f"\nloaded / fresh, median of the pairs: p50 {p50:.3f}, CPU per call {cpu:.3f}")


if __name__ == "__main__":
    sys.exit(main())
