"""Benchmark: HTTP/2 and gRPC through devamb, against direct and nghttpx (the native peer).
(Not bench/h2.py: the scripts here run with bench/ first on sys.path, where an h2.py would
stand for the `h2` library that devamb imports.)

    python bench/http2.py [--rounds 3] [--duration 5] [--quick] [--grpc] [--out FILE.json] [--keep]

Cases (1 KiB responses, recording on, devamb under uvloop):
- h2load (Debian nghttp2-client) `-c1 -m100` (one connection, 100 streams in flight) and
  `-c32 -m1` (32 connections), against the h2 upstream directly, through a devamb `http2`
  service and through nghttpx (Debian nghttp2-proxy) as an h2c -> h2c proxy;
- a grpcio unary ping-pong (a 16-byte message) at c1 and c32, direct and through a devamb
  `grpc` service: calls per second and p50, and the p50 devamb adds.

Load, client and upstreams run on CPU 0, the proxy under test on CPU 1 (as bench/run.py).
Rounds are interleaved; the report gives medians. Goals (issue #17): devamb >= 0.3 x nghttpx
req/s with recording on; added p50 of a unary gRPC call at c1 <= 0.3 ms. Exit code 0 when the
goals measured pass, 1 otherwise, 2 when it cannot run (h2load missing). Without nghttpx the
throughput goal is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from peers import LOAD_CPU, PROXY_CPU, REPO
from procs import HOST, Children, StartError, cpu_seconds, free_port, pinned, set_cpus

HERE = Path(__file__).resolve().parent
THROUGHPUT_GOAL = 0.3  # devamb / nghttpx req/s
GRPC_P50_GOAL_MS = 0.3  # added p50 at c1
H2LOAD_CASES = {"h2 c1 m100": ["-c1", "-m100", "-t1"], "h2 c32": ["-c32", "-m1", "-t1"]}
GRPC_CASES = {"grpc c1": 1, "grpc c1 one-CPU": 1, "grpc c32": 32}
ONE_CPU = "grpc c1 one-CPU"  # the proxy moved onto the load CPU: no cross-CPU wake-ups (README)
_RPS = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")
_DONE = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded")
_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def progress(text: str) -> None:
    print(f"[h2] {text}", file=sys.stderr, flush=True)


def profile(h2_port: int, grpc_port: int, h2_up: int, grpc_up: int) -> str:
    return textwrap.dedent(f"""\
        version: 1
        name: bench-h2
        services:
          h2:
            listen: {h2_port}
            protocol: http2
            targets:
              up: http://{HOST}:{h2_up}
          grpc:
            listen: {grpc_port}
            protocol: grpc
            targets:
              up: http://{HOST}:{grpc_up}
        """)


def start_upstream(children: Children, kind: str) -> int:
    """bench/h2_upstreams.py's `kind` upstream (h2 or grpc) on the load CPU; its port."""
    port = free_port()
    child = children.spawn(f"upstream-{kind}", [sys.executable, str(HERE / "h2_upstreams.py"),
                                                kind, str(port)], cpu=LOAD_CPU)
    children.wait_listening(child, [port])
    return port


def h2load(port: int, args: list[str], seconds: float) -> dict[str, float]:
    argv = pinned(["h2load", *args, "-D", f"{seconds:g}", "--warm-up-time=1",
                   f"http://{HOST}:{port}/1k"], LOAD_CPU)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    out = done.stdout + done.stderr
    rps, counts, mean = _RPS.search(out), _DONE.search(out), _MEAN.search(out)
    if rps is None or counts is None:
        raise RuntimeError(f"h2load said:\n{out[-800:]}")
    return {
        "rps": float(rps.group(1)),
        "requests": int(counts.group(2)),
        "failed": int(counts.group(2)) - int(counts.group(3)),
        "mean_ms": float(mean.group(1)) * _UNITS[mean.group(2)] if mean else float("nan"),
    }


def grpc_run(port: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Unary calls on one channel from `concurrency` threads, for `seconds`."""
    import grpc

    os.sched_setaffinity(0, {LOAD_CPU} & os.sched_getaffinity(0) or os.sched_getaffinity(0))
    channel = grpc.insecure_channel(f"{HOST}:{port}")
    ping = channel.unary_unary("/bench.Ping/Ping")
    message = b"0123456789abcdef"
    for _ in range(200):  # warm-up
        assert ping(message, timeout=10) == message
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + seconds

    def worker(mine: list[float]) -> None:
        clock = time.perf_counter
        while (start := clock()) < stop:
            ping(message, timeout=10)
            mine.append(clock() - start)

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in latencies]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    channel.close()
    every = sorted(x for mine in latencies for x in mine)
    return {"rps": len(every) / elapsed, "requests": len(every),
            "p50_ms": every[len(every) // 2] * 1000, "p99_ms": every[int(len(every) * .99)] * 1000}


def start_nghttpx(children: Children, root: Path, upstream: int) -> tuple[int, int] | str:
    exe = shutil.which("nghttpx") or ("/usr/sbin/nghttpx" if Path("/usr/sbin/nghttpx").exists()
                                      else None)
    if exe is None:
        return "nghttpx is not installed (Debian nghttp2-proxy): no native peer"
    port = free_port()
    argv = [exe, f"--frontend={HOST},{port};no-tls", f"--backend={HOST},{upstream};;proto=h2",
            "--workers=1", "--conf=/dev/null", f"--pid-file={root}/nghttpx.pid",
            "--frontend-http2-max-concurrent-streams=1000"]
    child = children.spawn("nghttpx", argv, cpu=PROXY_CPU, cwd=root)
    try:
        children.wait_listening(child, [port])
    except StartError as exc:
        return f"nghttpx did not start: {exc}"
    return port, child.pid


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="2 rounds x 2 s")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and the logs")
    parser.add_argument("--grpc", action="store_true",
                        help="the gRPC cases alone (no h2load, no nghttpx): the p50 goal")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 2.0
    if shutil.which("h2load") is None and not args.grpc:
        print("h2load is not installed (Debian nghttp2-client): nothing to measure")
        return 2
    root = Path(tempfile.mkdtemp(prefix="devamb-bench-h2-"))
    notes: list[str] = []
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    with Children(root) as children:
        h2_up, grpc_up = start_upstream(children, "h2"), start_upstream(children, "grpc")
        h2_port, grpc_port = free_port(), free_port()
        (root / "devamb.yaml").write_text(profile(h2_port, grpc_port, h2_up, grpc_up))
        env = {"DEVAMB_LOOP": "uvloop",
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get(
                   "PYTHONPATH")) if p)}
        devamb = children.spawn("devamb", [sys.executable, "-m", "devamb", "up", "--headless",
                                           str(root / "devamb.yaml")],
                                cpu=PROXY_CPU, env=env, cwd=root)
        children.wait_listening(devamb, [h2_port, grpc_port])
        h2_subjects: dict[str, tuple[int, int | None]] = {
            "direct": (h2_up, None), "devamb": (h2_port, devamb.pid)}
        peer = "--grpc: no h2load cases" if args.grpc else start_nghttpx(children, root, h2_up)
        if isinstance(peer, str):
            notes.append(peer)
        else:
            h2_subjects["nghttpx"] = peer
        grpc_subjects = {"direct": (grpc_up, None), "devamb": (grpc_port, devamb.pid)}
        for round_no in range(args.rounds):
            order = list(h2_subjects) if round_no % 2 == 0 else list(reversed(h2_subjects))
            for case, h2args in ({} if args.grpc else H2LOAD_CASES).items():
                for name in order:
                    port, pid = h2_subjects[name]
                    progress(f"round {round_no + 1}: {case} {name}")
                    before = cpu_seconds(pid) if pid else None
                    result = h2load(port, h2args, args.duration)
                    if before is not None and pid and result["requests"]:
                        after = cpu_seconds(pid) or before
                        cpu.setdefault((case, name), []).append(
                            (after - before) / result["requests"] * 1e6)
                    samples.setdefault((case, name), []).append(result)
            for case, concurrency in GRPC_CASES.items():
                for name in (order if "nghttpx" not in order else
                             [n for n in order if n != "nghttpx"]):
                    port, pid = grpc_subjects[name]
                    progress(f"round {round_no + 1}: {case} {name}")
                    if case == ONE_CPU and pid:
                        set_cpus(pid, {LOAD_CPU})
                    before = cpu_seconds(pid) if pid else None
                    try:
                        result = grpc_run(port, concurrency, args.duration)
                        samples.setdefault((case, name), []).append(result)
                        if before is not None and pid and result["requests"]:
                            after = cpu_seconds(pid) or before
                            cpu.setdefault((case, name), []).append(
                                (after - before) / result["requests"] * 1e6)
                    finally:
                        if case == ONE_CPU and pid:
                            set_cpus(pid, {PROXY_CPU})
    report = summarize(samples, cpu, notes)
    print(report["markdown"])
    out = args.out or HERE / "results" / time.strftime("h2-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"}, indent=1))
    out.with_suffix(".md").write_text(report["markdown"])
    progress(f"report: {out} (and .md)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        progress(f"kept {root}")
    return 0 if all(g["pass"] for g in report["goals"] if g["pass"] is not None) else 1


def summarize(samples: dict[tuple[str, str], list[dict[str, float]]],
              cpu: dict[tuple[str, str], list[float]], notes: list[str]) -> dict:
    med = {key: {field: median([s[field] for s in runs]) for field in runs[0]}
           for key, runs in samples.items()}
    lines = ["| case | subject | req/s | mean ms (h2load) / p50 ms (grpc) | p99 ms | "
             "proxy CPU us/req | failed |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for (case, name), m in med.items():
        latency = m.get("p50_ms", m.get("mean_ms", float("nan")))
        us = median(cpu.get((case, name), []))
        lines.append(f"| {case} | {name} | {m['rps']:.0f} | {latency:.3f} | "
                     f"{m.get('p99_ms', float('nan')):.3f} | "
                     f"{'' if us != us else f'{us:.0f}'} | {int(m.get('failed', 0))} |")
    goals = []
    for case in H2LOAD_CASES:
        d, n = med.get((case, "devamb")), med.get((case, "nghttpx"))
        ratio = d["rps"] / n["rps"] if d and n and n["rps"] else None
        goals.append({"goal": f"{case}: devamb >= {THROUGHPUT_GOAL} x nghttpx req/s",
                      "value": ratio, "pass": None if ratio is None else ratio >= THROUGHPUT_GOAL})
    for case in GRPC_CASES:
        d, direct = med.get((case, "devamb")), med.get((case, "direct"))
        added = d["p50_ms"] - direct["p50_ms"] if d and direct else None
        goal = case in ("grpc c1", ONE_CPU)
        goals.append({"goal": f"{case}: added p50 ms" + (f" <= {GRPC_P50_GOAL_MS}" if goal
                                                           else " (no goal)"),
                      "value": added,
                      "pass": None if added is None or not goal else added <= GRPC_P50_GOAL_MS})
    lines += ["", "| goal | value | pass |", "| --- | --- | --- |"]
    for g in goals:
        value = "n/a" if g["value"] is None else f"{g['value']:.3f}"
        lines.append(f"| {g['goal']} | {value} | {'' if g['pass'] is None else g['pass']} |")
    notes = [*notes, "the h2 upstream is Python (h2 + uvloop; nghttpd is not installed): at "
             "c32 it can bound direct and both proxies alike"]
    lines += ["", *(f"- {n}" for n in notes)]
    return {"medians": {f"{c} / {s}": m for (c, s), m in med.items()},
            "cpu_us_per_req": {f"{c} / {s}": median(v) for (c, s), v in cpu.items()},
            "goals": goals, "notes": notes, "markdown": "\n".join(lines)}


if __name__ == "__main__":
    sys.exit(main())
