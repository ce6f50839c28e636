"""devamb benchmark: direct vs devamb vs nginx/socat/haproxy/mitmproxy, side by side in one run.

    python bench/run.py [--quick] [--loop uvloop|asyncio|both] [--out bench/results/NAME.json]

wrk and the upstream (nginx) run on CPU 0, the proxy under test on CPU 1. Every configuration is
measured in each round, rounds are interleaved, and the report gives medians. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import machine
import profiling
import report
import startup_rss
from loadgen import Load, WrkError, run_wrk
from peers import (
    BENCH_DIR,
    LOAD_CPU,
    PROXY_CPU,
    Subject,
    Unavailable,
    Upstream,
    direct,
    start_devamb,
    start_envoy,
    start_haproxy,
    start_mitmproxy,
    start_nginx_proxy,
    start_reference,
    start_socat,
    start_upstream,
)
from procs import Children, StartError, cpu_seconds, read_status_kib, set_cpus, settle
from report import CASES, CHURN, Case, Memory, Sample

LOOPS = {"uvloop": ("uvloop",), "asyncio": ("asyncio",), "both": ("uvloop", "asyncio")}


@dataclass(frozen=True)
class Plan:
    rounds: int
    max_seconds: int  # per wrk run, before the time budget shrinks it
    budget: float  # seconds of measurement in total
    loops: tuple[str, ...]
    peers: bool
    cases: tuple[Case, ...]
    reference: bool = False

    def seconds(self, cells: int) -> int:
        """Seconds per wrk run so that cells x rounds runs fit the budget (at least 1 s)."""
        if self.budget == float("inf"):
            return self.max_seconds
        fitting = int(self.budget // max(1, cells * self.rounds))
        return max(1, min(self.max_seconds, fitting))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of ≤ 2 s (≈ 1.5 min)")
    parser.add_argument(
        "--loop",
        choices=sorted(LOOPS),
        default="both",
        help="event loop(s) for the devamb engine (default: both)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="only direct and devamb (skip nginx, socat, haproxy, envoy, mitmproxy)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON report path (a .md is written beside it); default bench/results/<time>.json",
    )
    parser.add_argument(
        "--churn",
        action="store_true",
        help="also relay TCP with a new connection per request (socat forks)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also measure bench/refproxy.py, a minimal Protocol-level proxy",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="after measuring, sample each devamb engine with py-spy under load "
        "(HTTP c1/c32/1 MiB, TCP) and write collapsed stacks to DIR",
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.duration or (2 if args.quick else 5)
    budget = 60.0 if args.quick else 300.0
    if args.duration:
        budget = float("inf")  # an explicit duration wins over the budget
    cases = (*CASES, CHURN) if args.churn else CASES
    return Plan(rounds, seconds, budget, LOOPS[args.loop], not args.no_peers, cases, args.reference)


def start_subjects(
    children: Children, workdir: Path, upstream: Upstream, plan: Plan
) -> tuple[list[Subject], list[str]]:
    """Everything wrk will be pointed at; what cannot start becomes a note."""
    starters: list[tuple[str, Callable[[], Subject]]] = [
        (f"devamb ({loop})", lambda loop=loop: start_devamb(children, workdir, upstream, loop))
        for loop in plan.loops
    ]
    if plan.peers:
        starters += [
            ("nginx", lambda: start_nginx_proxy(children, workdir, upstream)),
            ("socat", lambda: start_socat(children, upstream)),
            ("haproxy", lambda: start_haproxy(children, workdir, upstream)),
            ("envoy", lambda: start_envoy(children, workdir, upstream)),
            ("mitmproxy", lambda: start_mitmproxy(children, workdir, upstream)),
        ]
    if plan.reference:
        starters.append(("refproxy", lambda: start_reference(children, upstream)))
    subjects, notes = [direct(upstream)], []
    for name, start in starters:
        try:
            subject = start()
        except (Unavailable, StartError) as exc:
            notes.append(f"{name} skipped: {exc}")
            progress(f"skip {name}: {exc}")
            continue
        notes.extend(f"{subject.label}: {note}" for note in subject.notes)
        subjects.append(subject)
    return subjects, notes


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cells(cases: Sequence[Case], subjects: Sequence[Subject]) -> list[tuple[Case, Subject, str]]:
    return [
        (case, subject, url)
        for case in cases
        for subject in subjects
        if (url := subject.url(case.protocol, case.path)) is not None
    ]


def warm_up(subjects: Sequence[Subject]) -> None:
    """One second of load per listener, so first-round figures are not connection set-up."""
    for subject in subjects:
        for protocol in sorted(subject.ports):
            url = subject.url(protocol, "/1k")
            assert url is not None
            try:
                run_wrk(url, Load(connections=32, threads=2, seconds=1), LOAD_CPU)
            except WrkError as exc:
                progress(f"warm-up {subject.key}/{protocol} failed: {exc}")


@contextlib.contextmanager
def placed(case: Case, subject: Subject) -> Iterator[None]:
    """For one-CPU cases, move the proxy next to wrk and the upstream for the run."""
    if not case.one_cpu or subject.pid is None:
        yield
        return
    set_cpus(subject.pid, {LOAD_CPU})
    try:
        yield
    finally:
        set_cpus(subject.pid, {PROXY_CPU})


def measure_one(case: Case, subject: Subject, url: str, seconds: int, round_no: int) -> Sample:
    """One wrk run, with the proxy's CPU time over the run."""
    pid = subject.pid
    with placed(case, subject):
        before = cpu_seconds(pid) if pid else None
        load = Load(case.connections, case.threads, seconds, close=case.close)
        result = run_wrk(url, load, LOAD_CPU)
        if pid:
            settle(pid)  # socat's per-connection children: their time lands in its cutime
        after = cpu_seconds(pid) if pid else None
    cpu_us = None
    if before is not None and after is not None and result.requests:
        cpu_us = (after - before) / result.requests * 1e6
    return Sample(case.key, subject.key, round_no, result, cpu_us)


def measure(
    plan: Plan, subjects: Sequence[Subject]
) -> tuple[list[Sample], list[str], int, dict[str, int | None]]:
    """Every (case, subject) once per round; the subject order rotates from round to round.
    Also each devamb engine's VmHWM right after its HTTP 1 MiB runs (issue 22's peak goal)."""
    todo = cells(plan.cases, subjects)
    seconds = plan.seconds(len(todo))
    samples: list[Sample] = []
    notes: list[str] = []
    peak_1m: dict[str, int | None] = {}
    for round_no in range(1, plan.rounds + 1):
        for case in plan.cases:
            row = [(s, u) for c, s, u in todo if c is case]
            shift = (round_no - 1) % max(1, len(row))
            for subject, url in row[shift:] + row[:shift]:
                try:
                    sample = measure_one(case, subject, url, seconds, round_no)
                except WrkError as exc:
                    notes.append(f"{case.key} {subject.key} round {round_no}: {exc}")
                    progress(f"{case.key} {subject.key}: {exc}")
                    continue
                samples.append(sample)
                progress(describe_sample(sample, plan.rounds))
                if case.key == PEAK_CASE and subject.kind == "devamb" and subject.pid:
                    peak_1m[subject.key] = read_status_kib(subject.pid, "VmHWM")
    return samples, notes, seconds, peak_1m


PEAK_CASE = "http-1m-c8"


def describe_sample(sample: Sample, rounds: int) -> str:
    result = sample.result
    cpu = "" if sample.cpu_us_per_request is None else f"cpu {sample.cpu_us_per_request:.0f} us/req"
    return (
        f"round {sample.round}/{rounds} {sample.case:<15} {sample.subject:<15} "
        f"{result.rps:>9,.0f} req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms  "
        f"errors {result.errors}  {cpu}"
    )


def idle_memory(subjects: Sequence[Subject]) -> dict[str, int | None]:
    return {s.key: read_status_kib(s.pid, "VmRSS") for s in subjects if s.pid is not None}


def peak_memory(subjects: Sequence[Subject], idle: dict[str, int | None]) -> list[Memory]:
    return [
        Memory(s.key, idle.get(s.key), read_status_kib(s.pid, "VmHWM"))
        for s in subjects
        if s.pid is not None
    ]


PROFILED_CASES = ("http-1k-c1-cpu0", "http-1k-c32", "http-1m-c8", "tcp-1k-c32")


def run_profiles(outdir: Path | None, subjects: Sequence[Subject]) -> list[profiling.Profile]:
    if outdir is None:
        return []
    if not profiling.available():
        progress("py-spy is not installed (pip install py-spy): no profiles")
        return []
    engines = [s for s in subjects if s.kind == "devamb"]
    cases = [c for c in CASES if c.key in PROFILED_CASES]
    progress(f"profiling {', '.join(s.key for s in engines)} with py-spy into {outdir}")
    profiles = []
    for engine in engines:
        for case in cases:
            with placed(case, engine):
                profiles += profiling.profile_all([engine], [case], 5, outdir)
    return profiles


def default_out() -> Path:
    return BENCH_DIR / "results" / f"{datetime.now():%Y%m%d-%H%M%S}.json"


@dataclass
class Outcome:
    """Everything one run found, for the markdown and the JSON report."""

    machine: machine.Info
    command: str
    plan: Plan
    seconds: int
    subjects: list[Subject]
    samples: list[Sample]
    memory: list[Memory]
    notes: list[str]
    profiles: list[profiling.Profile]
    wall_seconds: float = 0.0
    start_rss: list[startup_rss.StartRss] = field(default_factory=list)
    peak_1m_kib: dict[str, int | None] = field(default_factory=dict)  # VmHWM after HTTP 1 MiB

    @property
    def summaries(self) -> report.Summaries:
        return report.summarize(self.samples)

    @property
    def goals(self) -> list[report.Goal]:
        found = report.goals(self.summaries, [s for s in self.subjects if s.kind == "devamb"])
        return found + report.peak_goals(self.peak_1m_kib) + startup_rss.goals(self.start_rss)


def render(outcome: Outcome) -> str:
    summaries, subjects, cases = outcome.summaries, outcome.subjects, outcome.plan.cases
    parts = [
        machine.markdown(outcome.machine),
        f"`{outcome.command}` — rounds: {outcome.plan.rounds}, {outcome.seconds} s each per "
        "configuration, interleaved; medians. wrk + upstream on CPU 0, proxy under test on CPU 1.",
        report.results_table(cases, summaries, subjects),
        "**Goals** (issues 2, 9 and 22)\n\n" + report.goals_table(outcome.goals, subjects),
    ]
    loops = report.loops_table(cases, summaries)
    if loops:
        parts.append("**Event loop** (devamb engine)\n\n" + loops)
    parts.append("**Memory**\n\n" + report.memory_table(outcome.memory, subjects))
    if outcome.start_rss:
        parts.append("**Engine RSS after start** (issue 22; `bench/startup_rss.py`)\n\n"
                     + startup_rss.table(outcome.start_rss))
    if outcome.notes:
        parts.append("**Notes**\n\n" + "\n".join(f"- {note}" for note in outcome.notes))
    if outcome.profiles:
        profiles = profiling.markdown(outcome.profiles)
        parts.append("**Profiles** (py-spy, after the measured rounds)\n\n" + profiles)
    return "\n\n".join(parts) + "\n"


def as_json(outcome: Outcome) -> dict[str, object]:
    return {
        "command": outcome.command,
        "machine": outcome.machine,
        "settings": {
            "rounds": outcome.plan.rounds,
            "seconds": outcome.seconds,
            "loops": list(outcome.plan.loops),
            "wall_seconds": outcome.wall_seconds,
        },
        "cases": [asdict(c) for c in outcome.plan.cases],
        "subjects": [asdict(s) for s in outcome.subjects],
        "summaries": [asdict(s) for s in outcome.summaries.values()],
        "goals": [asdict(g) for g in outcome.goals],
        "memory": [asdict(m) for m in outcome.memory],
        "start_rss": [asdict(r) for r in outcome.start_rss],
        "peak_1m_kib": outcome.peak_1m_kib,
        "samples": [asdict(s) for s in outcome.samples],
        "notes": outcome.notes,
        "profiles": [asdict(p) for p in outcome.profiles],
    }


def busy_note(info: machine.Info) -> list[str]:
    load = float(str(info["load_average"]).split()[0])
    if load <= 0.5:
        return []
    return [
        f"the machine was busy before the run (load average {load:.2f} on {info['cores']} "
        "CPUs): absolute figures are low and noisy; compare ratios and CPU us/req"
    ]


def measure_everything(args: argparse.Namespace, plan: Plan, command: str) -> Outcome:
    """Start the upstream and every subject, measure, and stop them all (whatever happens)."""
    info = machine.describe()  # load average before we add ours
    workdir = Path(tempfile.mkdtemp(prefix="devamb-bench-"))
    try:
        with Children(workdir) as children:
            upstream = start_upstream(children, workdir)
            subjects, notes = start_subjects(children, workdir, upstream, plan)
            idle = idle_memory(subjects)
            names = ", ".join(s.key for s in subjects)
            progress(f"upstream {upstream.server} on :{upstream.port}; measuring {names}")
            warm_up(subjects)
            samples, run_notes, seconds, peak_1m = measure(plan, subjects)
            memory = peak_memory(subjects, idle)
            profiles = run_profiles(args.py_spy, subjects)
            progress("engine RSS after start: the demo profile and 20 services")
            start_rss = startup_rss.measure(children, workdir, upstream.port)
    finally:
        if args.keep:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    notes += busy_note(info)
    return Outcome(
        info,
        command,
        plan,
        seconds,
        subjects,
        samples,
        memory,
        notes + run_notes,
        profiles,
        start_rss=start_rss,
        peak_1m_kib=peak_1m,
    )


def run(args: argparse.Namespace, command: str) -> int:
    started = time.monotonic()
    outcome = measure_everything(args, make_plan(args), command)
    outcome.wall_seconds = round(time.monotonic() - started, 1)
    text = render(outcome)
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(as_json(outcome), indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    print(text, flush=True)
    progress(f"wrote {out} and {out.with_suffix('.md')} in {outcome.wall_seconds} s")
    return 0 if all(goal.passed is not False for goal in outcome.goals) else 1


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the `finally` blocks stop every child.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    args = parse_args(argv)
    command = " ".join(["python bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    return run(args, command)


if __name__ == "__main__":
    sys.exit(main())
