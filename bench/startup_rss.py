"""Engine RSS after start (issue 22): the demo profile and a generated 20-service profile.

    python bench/startup_rss.py [--rounds 3]

Each engine is `python -m devamb up --headless PROFILE` (uvloop, pinned to the proxy CPU),
read from /proc/PID/status (VmRSS) one second after every listener accepts; the median of the
rounds is compared with the goals. bench/run.py prints the same table. Exit code 1 when a goal
is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from peers import PROXY_CPU, REPO
from procs import HOST, Children, StartError, free_port, read_status_kib
from report import Goal

SETTLE = 1.0  # seconds after the listeners accept: the start's own work is done
DEMO_GOAL_MIB = 30.0
TWENTY_GOAL_MIB = 40.0


@dataclass(frozen=True)
class StartRss:
    key: str  # demo | twenty
    label: str
    goal_mib: float
    rss_kib: list[int]  # one per round

    @property
    def median_mib(self) -> float | None:
        return statistics.median(self.rss_kib) / 1024 if self.rss_kib else None


def demo_profile(ports: Sequence[int]) -> str:
    """The shipped demo profile (profiles/demo.yaml) with its listeners on `ports`."""
    text = (REPO / "profiles" / "demo.yaml").read_text()
    found = iter(ports)
    return re.sub(r"(?m)^(\s+listen:) \d+", lambda m: f"{m.group(1)} {next(found)}", text)


def demo_listeners() -> int:
    return len(re.findall(r"(?m)^\s+listen: \d+", (REPO / "profiles" / "demo.yaml").read_text()))


def many_services(ports: Sequence[int], upstream_port: int) -> str:
    """HTTP services on one upstream; every 4th starts on its built-in echo target."""
    lines = ["version: 1", f"name: bench-{len(ports)}", "services:"]
    for index, port in enumerate(ports):
        lines += [
            f"  svc{index:02d}:",
            f"    listen: {port}",
            f"    target: {'debug' if index % 4 == 3 else 'up'}",
            "    targets:",
            f"      up: http://{HOST}:{upstream_port}/",
            "      debug: echo",
        ]
    return "\n".join(lines) + "\n"


def engine_rss(children: Children, root: Path, key: str, profile: str,
               ports: Sequence[int]) -> int | None:
    """Start an engine on `profile`, read its VmRSS after start, stop it."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "devamb.yaml"
    path.write_text(profile)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {"DEVAMB_LOOP": "uvloop", "PYTHONPATH": pythonpath}
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(path)]
    child = children.spawn(key, argv, cpu=PROXY_CPU, env=env, cwd=root)
    try:
        children.wait_listening(child, ports, timeout=30)
        time.sleep(SETTLE)
        return read_status_kib(child.pid, "VmRSS")
    finally:
        children.stop(child)


def measure(children: Children, workdir: Path, upstream_port: int,
            rounds: int = 2) -> list[StartRss]:
    """Both engines, alternating, `rounds` times each."""
    demo = StartRss("demo", "demo profile (3 services)", DEMO_GOAL_MIB, [])
    twenty = StartRss("twenty", "20 HTTP services", TWENTY_GOAL_MIB, [])
    for round_no in range(1, rounds + 1):
        for found in (demo, twenty):
            key = f"start-rss-{found.key}-{round_no}"
            if found.key == "demo":
                ports = [free_port() for _ in range(demo_listeners())]
                profile = demo_profile(ports)
            else:
                ports = [free_port() for _ in range(20)]
                profile = many_services(ports, upstream_port)
            try:
                kib = engine_rss(children, workdir / key, key, profile, ports)
            except StartError as exc:
                print(f"[startup-rss] {key} did not start: {exc}", file=sys.stderr)
                continue
            if kib is not None:
                found.rss_kib.append(kib)
    return [demo, twenty]


def goals(found: Sequence[StartRss]) -> list[Goal]:
    return [
        Goal(f"engine RSS after start, {f.label}", f"≤ {f.goal_mib:g} MiB", "devamb-uvloop",
             f.median_mib, None if f.median_mib is None else f.median_mib <= f.goal_mib,
             f"VmRSS {SETTLE:g} s after the listeners accept, median of {len(f.rss_kib)}")
        for f in found
    ]


def table(found: Sequence[StartRss]) -> str:
    rows = ["| engine (uvloop) | VmRSS after start MiB (median) | each run MiB | goal |",
            "| --- | ---: | --- | --- |"]
    for f in found:
        median = "-" if f.median_mib is None else f"{f.median_mib:.1f}"
        each = ", ".join(f"{kib / 1024:.1f}" for kib in f.rss_kib)
        rows.append(f"| {f.label} | {median} | {each} | ≤ {f.goal_mib:g} MiB |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="devamb-start-rss-"))
    try:
        with Children(workdir) as children:
            # the 20 services' URL targets are not connected at start: no upstream needed
            found = measure(children, workdir, free_port(), args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average before: {load:.2f}\n")
    print(table(found))
    missed = [g for g in goals(found) if g.passed is False]
    for goal in goals(found):
        verdict = "not measured" if goal.passed is None else ("pass" if goal.passed else "FAIL")
        print(f"- {goal.name}: {goal.target}: {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
