"""Benchmark case: a pool of 2 replicas with health checks vs a single URL target, through devamb.

    python bench/pool.py [--rounds 3] [--duration 5] [--loop uvloop|asyncio] [--out FILE.json]

One nginx worker on CPU 0 (with wrk) serves /1k on two ports, A and B: two replicas, and the
same upstream work per request whichever target is measured. One devamb engine on CPU 1 has two
HTTP services: `single` (a URL target on A) and `pool` (`endpoints:` A and B, round robin,
`health: {path: /1k, interval: 1s}`, outlier ejection on). wrk (-t2 -c32, 1 KiB) runs against
each in turn, interleaved over the rounds with the order alternating; the report gives medians
of req/s and p50/p99 and the proxy CPU time per request. Goal: the pool costs <= 10 % of the
single target's throughput. Exit code 0 when the goal holds, 1 otherwise, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from loadgen import Load, WrkError, run_wrk
from peers import LOAD_CPU, PROXY_CPU, REPO, SMALL, _start_nginx, devamb_available
from procs import HOST, Children, StartError, cpu_seconds, free_port

GOAL = 0.10  # the pool may cost at most this share of the single target's req/s
SUBJECTS = ("single", "pool")


def start_replicas(children: Children, root: Path) -> tuple[int, int]:
    """One nginx worker answering on two ports: replicas A and B."""
    www = root / "www"
    www.mkdir(parents=True)
    (www / "1k").write_bytes(os.urandom(SMALL))
    a, b = free_port(), free_port()
    server = f"server {{\n    listen {HOST}:{a};\n    listen {HOST}:{b};\n    root {www};\n}}"
    child, _ = _start_nginx(children, root, "upstream-nginx", server, a, LOAD_CPU)
    children.wait_listening(child, [b])
    return a, b


def profile(single_port: int, pool_port: int, a: int, b: int) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        name: bench-pool
        services:
          single:
            listen: {single_port}
            targets:
              up: http://{HOST}:{a}
          pool:
            listen: {pool_port}
            targets:
              replicas:
                endpoints: [http://{HOST}:{a}, http://{HOST}:{b}]
                balance: round_robin
                health: {{path: /1k, interval: 1s, timeout: 1s}}
                outlier: {{consecutive_failures: 5, eject_for: 30s}}
        """
    )


def start_engine(children: Children, root: Path, text: str, ports: Sequence[int], loop: str):
    (root / "devamb.yaml").write_text(text)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(root / "devamb.yaml")]
    child = children.spawn(
        f"devamb-{loop}",
        argv,
        cpu=PROXY_CPU,
        env={"DEVAMB_LOOP": loop, "PYTHONPATH": pythonpath},
        cwd=root,
    )
    children.wait_listening(child, ports)
    return child


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("nginx") is None or not devamb_available():
        print("needs wrk, nginx and devamb's command line", file=sys.stderr)
        return 2
    samples: dict[str, list[dict[str, float]]] = {s: [] for s in SUBJECTS}
    busy = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="devamb-bench-pool-") as tmp,
        Children(Path(tmp)) as children,
    ):
        base = Path(tmp)
        try:
            a, b = start_replicas(children, base / "upstream")
            ports = {"single": free_port(), "pool": free_port()}
            engine = start_engine(
                children,
                base,
                profile(ports["single"], ports["pool"], a, b),
                list(ports.values()),
                args.loop,
            )
        except StartError as exc:
            print(f"cannot start: {exc}", file=sys.stderr)
            return 2
        load = Load(args.connections, 2, args.duration)
        for subject in SUBJECTS:  # warm-up: connection pools, first health checks
            run_wrk(f"http://{HOST}:{ports[subject]}/1k", Load(32, 2, 1), LOAD_CPU)
        for round_no in range(args.rounds):
            order = SUBJECTS if round_no % 2 == 0 else SUBJECTS[::-1]
            for subject in order:
                before = cpu_seconds(engine.pid)
                try:
                    result = run_wrk(f"http://{HOST}:{ports[subject]}/1k", load, LOAD_CPU)
                except WrkError as exc:
                    print(f"{subject} round {round_no + 1}: {exc}", file=sys.stderr)
                    continue
                after = cpu_seconds(engine.pid)
                cpu = (after - before) / result.requests * 1e6 if before and after else 0.0
                samples[subject].append(
                    {
                        "rps": result.rps,
                        "p50_ms": result.p50_ms,
                        "p99_ms": result.p99_ms,
                        "cpu_us": cpu,
                        "errors": result.errors,
                    }
                )
                print(
                    f"round {round_no + 1} {subject:>6}: {result.rps:9.0f} req/s  "
                    f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                    f"{cpu:.0f} us CPU/req  errors {result.errors}",
                    flush=True,
                )
    if not all(samples.values()):
        print("no complete measurement", file=sys.stderr)
        return 2
    med = {
        s: {k: statistics.median(x[k] for x in samples[s]) for k in samples[s][0]} for s in SUBJECTS
    }
    cost = 1 - med["pool"]["rps"] / med["single"]["rps"]
    cpu_cost = med["pool"]["cpu_us"] / med["single"]["cpu_us"] - 1 if med["single"]["cpu_us"] else 0
    print()
    print(
        f"HTTP 1 KiB, wrk -t2 -c{args.connections}, {args.rounds} x {args.duration} s, "
        f"devamb ({args.loop}) on CPU {PROXY_CPU}, wrk + nginx on CPU {LOAD_CPU}; medians"
    )
    print()
    print("| target | req/s | p50 ms | p99 ms | proxy CPU us/req |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for s in SUBJECTS:
        m = med[s]
        print(
            f"| {s} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['cpu_us']:.0f} |"
        )
    verdict = "pass" if cost <= GOAL else "FAIL"
    print(f"\npool throughput cost: {cost * 100:+.1f} % (goal <= {GOAL * 100:.0f} %): {verdict}")
    print(f"pool proxy CPU per request: {cpu_cost * 100:+.1f} % (steadier on a busy machine)")
    if busy > 0.5:
        print(
            f"note: load average {busy:.2f} on {os.cpu_count()} CPUs before the run: "
            "req/s is noisy; compare CPU us/req"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "samples": samples,
                    "medians": med,
                    "cost": cost,
                    "cpu_cost": cpu_cost,
                    "goal": GOAL,
                    "load_average": busy,
                },
                indent=2,
            )
        )
    return 0 if cost <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
