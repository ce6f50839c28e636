"""Peak RSS under HTTP 1 MiB c8 (issue 22), without the peers: bench/run.py's sequence, one engine.

    python bench/peak_rss.py [--rounds 3] [--seconds 4] [--loop uvloop] [--cases K1,K2]
    python bench/peak_rss.py --probe [--drop]

One devamb engine (`python -m devamb up --headless`, the bench profile, pinned to the proxy CPU)
in front of nginx; each round runs bench/run.py's cases in its order (HTTP 1 KiB c1, c1 on
CPU 0, c32, HTTP 1 MiB c8, TCP c32), so the 1 MiB records push out the small records the 1 KiB
cases left, as in a full run. Prints VmRSS and VmHWM after every run (which case sets the peak)
and at the end, and the engine's CPU µs per exchange for each run. Exit code 1 when the peak
misses the goal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from loadgen import Load, run_wrk
from peers import LOAD_CPU, start_devamb, start_upstream
from procs import Children, cpu_seconds, read_status_kib, set_cpus
from report import CASES, PEAK_GOAL_MIB

PROXY_CPU = 1


def probe_report(pid: int, log: Path, sig: int = signal.SIGUSR2) -> None:
    """The engine's PROBE lines (bench/memprobe) after a SIGUSR2 (SIGUSR1: then again after
    dropping every record, a collection and malloc_trim)."""
    start = log.stat().st_size
    os.kill(pid, sig)
    time.sleep(1.0)
    with log.open("rb") as text:
        text.seek(start)
        lines = text.read().decode(errors="replace").splitlines()
    print("\n".join(line for line in lines if line.startswith("PROBE")), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, help="per wrk run")
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument("--probe", action="store_true",
                        help="at the end, the engine's heap, pymalloc arenas and store "
                        "(bench/memprobe: signal SIGUSR2)")
    parser.add_argument("--drop", action="store_true",
                        help="with --probe: at the end, report, drop every record the store "
                        "holds, collect and trim, and report again (what the records really held "
                        "against what the store counts)")
    parser.add_argument("--cases", default=",".join(c.key for c in CASES),
                        help="comma-separated case keys, in order (default: bench/run.py's)")
    args = parser.parse_args(argv)
    cases = [next(c for c in CASES if c.key == key) for key in args.cases.split(",")]
    if args.probe:
        probe = str(Path(__file__).resolve().parent / "memprobe")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (probe, os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="devamb-peak-") as tmp, Children(Path(tmp)) as kids:
        base = Path(tmp)
        upstream = start_upstream(kids, base)
        engine = start_devamb(kids, base, upstream, args.loop)
        pid = engine.pid
        assert pid is not None
        print(f"after start: VmRSS {read_status_kib(pid, 'VmRSS') / 1024:.1f} MiB", flush=True)
        if args.probe:
            probe_report(pid, base / f"devamb-{args.loop}.log")
        for protocol in ("http", "tcp"):  # bench/run.py's warm-up
            run_wrk(str(engine.url(protocol, "/1k")), Load(32, 2, 1), LOAD_CPU)
        for round_no in range(1, args.rounds + 1):
            for case in cases:
                if case.one_cpu:
                    set_cpus(pid, {LOAD_CPU})
                before = cpu_seconds(pid)
                result = run_wrk(str(engine.url(case.protocol, case.path)),
                                 Load(case.connections, case.threads, args.seconds), LOAD_CPU)
                after = cpu_seconds(pid)
                if case.one_cpu:
                    set_cpus(pid, {PROXY_CPU})
                cpu = (after - before) / max(1, result.requests) * 1e6
                line = (f"round {round_no} {case.key:<16} {result.rps:>9,.0f} req/s  "
                        f"cpu {cpu:.0f} µs")
                line += (f"  VmRSS {read_status_kib(pid, 'VmRSS') / 1024:.1f}"
                         f"  VmHWM {read_status_kib(pid, 'VmHWM') / 1024:.1f} MiB")
                print(line, flush=True)
        hwm = read_status_kib(pid, "VmHWM") / 1024
        if args.probe:
            probe_report(pid, base / f"devamb-{args.loop}.log",
                         signal.SIGUSR1 if args.drop else signal.SIGUSR2)
        print(f"end: VmRSS {read_status_kib(pid, 'VmRSS') / 1024:.1f} MiB, VmHWM {hwm:.1f} MiB "
              f"(goal ≤ {PEAK_GOAL_MIB} MiB)")
    return 0 if hwm <= PEAK_GOAL_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
