"""The sharded Redis benchmark: devamb's `shards:` target vs twemproxy (nutcracker) vs direct.

Starts 2 redis-servers, devamb with a `key: redis` sharded target over them, and nutcracker with
the same shards (ketama, md5, hash tags), then runs `redis-benchmark -t get,set -n N -c 50
-r 100000` at pipeline 1 and 16 against each, interleaved over rounds. The proxies run on CPU 1,
everything else on CPU 0. Prints a markdown table with the devamb/twemproxy ratio, each proxy's
CPU time per request (the steadiest figure on a shared machine) and the goals: >= 0.5x twemproxy
(issue 6) and >= 1.0x (issue 22) in every case; exit 1 when issue 22's is missed.

    python bench/redis_shards.py [--requests 100000] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import Children, StartError, cpu_seconds, free_port, pinned

ROOT = Path(__file__).resolve().parent.parent
LOAD_CPU, PROXY_CPU = 0, 1
PIPELINES = (1, 16)
GOALS = {6: 0.5, 22: 1.0}  # devamb / twemproxy in every case, by issue
EXIT_GOAL = 22  # the goal the exit code follows


@dataclass
class Subject:
    name: str
    port: int
    pid: int | None  # the proxy's process (CPU time); None for direct
    rps: dict[str, list[float]] = field(default_factory=dict)  # "SET P16" -> per round
    cpu_us: dict[str, list[float]] = field(default_factory=dict)


def start_redis(children: Children, folder: Path) -> list[int]:
    ports = []
    for i in range(2):
        port = free_port()
        data = folder / f"redis{i}"
        data.mkdir()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(data)]
        child = children.spawn(f"redis{i}", argv, cpu=LOAD_CPU)
        children.wait_listening(child, [port])
        ports.append(port)
    return ports


def start_devamb(children: Children, folder: Path, shards: list[int]) -> Subject:
    port = free_port()
    profile = folder / "devamb.yaml"
    urls = ", ".join(f"tcp://127.0.0.1:{p}" for p in shards)
    profile.write_text(textwrap.dedent(f"""\
        version: 1
        name: bench-shards
        services:
          cache:
            listen: {port}
            protocol: tcp
            targets:
              sharded: {{shards: [{urls}], key: redis}}
        """))
    env = {"PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(profile)]
    child = children.spawn("devamb", argv, cpu=PROXY_CPU, env=env, cwd=folder)
    children.wait_listening(child, [port], timeout=30)
    return Subject("devamb", port, child.pid)


def start_twemproxy(children: Children, folder: Path, shards: list[int]) -> Subject | None:
    binary = shutil.which("nutcracker")
    if binary is None:
        print("nutcracker not installed (Debian: apt-get install nutcracker); skipped")
        return None
    port = free_port()
    config = folder / "nutcracker.yml"
    servers = "\n".join(f"    - 127.0.0.1:{p}:1" for p in shards)
    config.write_text(
        f"shards:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  hash_tag: \"{{}}\"\n"
        f"  distribution: ketama\n  redis: true\n  servers:\n{servers}\n"
    )
    argv = [binary, "-c", str(config), "-s", str(free_port()), "-v", "2"]
    child = children.spawn("twemproxy", argv, cpu=PROXY_CPU)
    children.wait_listening(child, [port])
    return Subject("twemproxy", port, child.pid)


def run_benchmark(port: int, pipeline: int, requests: int) -> dict[str, float]:
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get,set",
            "-n", str(requests), "-P", str(pipeline), "-c", "50", "-r", "100000", "--csv"]
    done = subprocess.run(pinned(argv, LOAD_CPU), capture_output=True, text=True, timeout=600)
    rows = csv.DictReader(io.StringIO(done.stdout))
    found = {row["test"]: float(row["rps"]) for row in rows if row.get("rps")}
    if not found:
        raise RuntimeError(f"redis-benchmark on port {port} gave no figures: {done.stderr[-500:]}")
    return found


def measure(subject: Subject, pipeline: int, requests: int) -> None:
    before = cpu_seconds(subject.pid) if subject.pid else None
    figures = run_benchmark(subject.port, pipeline, requests)
    after = cpu_seconds(subject.pid) if subject.pid else None
    for test, rps in figures.items():
        subject.rps.setdefault(f"{test} P{pipeline}", []).append(rps)
    if before is not None and after is not None:
        per_request = (after - before) / (requests * len(figures)) * 1e6
        subject.cpu_us.setdefault(f"P{pipeline}", []).append(per_request)


def table(subjects: list[Subject], ratios: dict[str, float]) -> str:
    """The figures; `ratios` is filled with devamb / twemproxy by case."""
    names = [s.name for s in subjects]
    by_name = {s.name: s for s in subjects}
    lines = [
        "| case | " + " | ".join(f"{n} req/s" for n in names) + " | devamb / twemproxy |",
        "| --- | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for case in (f"{t} P{p}" for p in PIPELINES for t in ("SET", "GET")):
        medians = {n: statistics.median(by_name[n].rps.get(case) or [0]) for n in names}
        ratio = ""
        if medians.get("twemproxy") and "devamb" in medians:
            ratios[case] = value = medians["devamb"] / medians["twemproxy"]
            ratio = f"{value:.2f}"
        cells = " | ".join(f"{medians[n]:,.0f}" for n in names)
        lines.append(f"| {case} | {cells} | {ratio} |")
    lines.append("")
    lines.append("| proxy CPU µs/request | " + " | ".join(f"P{p}" for p in PIPELINES) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in PIPELINES) + " |")
    for s in subjects:
        if s.cpu_us:
            cells = " | ".join(f"{statistics.median(s.cpu_us[f'P{p}']):.1f}" for p in PIPELINES)
            lines.append(f"| {s.name} | {cells} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="per redis-benchmark run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and logs")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (Debian: apt-get install redis-server redis-tools)")
            return 2
    folder = Path(tempfile.mkdtemp(prefix="devamb-bench-shards-"))
    try:
        with Children(folder) as children:
            shards = start_redis(children, folder)
            subjects = [Subject("direct (1 redis)", shards[0], None)]
            subjects.append(start_devamb(children, folder, shards))
            twemproxy = start_twemproxy(children, folder, shards)
            if twemproxy is not None:
                subjects.append(twemproxy)
            run_benchmark(subjects[1].port, 16, 20_000)  # warm-up: connections, caches
            for round_ in range(args.rounds):
                order = subjects[round_ % len(subjects):] + subjects[: round_ % len(subjects)]
                for pipeline in PIPELINES:
                    for subject in order:
                        measure(subject, pipeline, args.requests)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    except (StartError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"redis-benchmark -c 50 -r 100000 -n {args.requests}, {args.rounds} rounds (medians); "
          f"proxies on CPU {PROXY_CPU}, the rest on CPU {LOAD_CPU}; load average {load:.1f}"
          f"{' (busy machine: figures are noisy)' if load > 1.5 else ''}")
    ratios: dict[str, float] = {}
    print(table(subjects, ratios))
    if not ratios:
        print("\nno twemproxy: the goals were not measured")
        return 0
    print("\n| goal | case | devamb / twemproxy | wanted | |")
    print("| --- | --- | ---: | ---: | --- |")
    missed: dict[int, list[str]] = {issue: [] for issue in GOALS}
    for issue, goal in GOALS.items():
        for case, value in ratios.items():
            if value < goal:
                missed[issue].append(case)
            print(f"| issue {issue} | {case} | {value:.2f} | >= {goal} | "
                  f"{'ok' if value >= goal else 'MISSED'} |")
    return 1 if missed[EXIT_GOAL] else 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    raise SystemExit(code)
