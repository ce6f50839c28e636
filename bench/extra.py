"""More benchmark cases (issues 3, 4, 5 and 9), each reusing the harness of bench/run.py.

    python bench/extra.py recording   # recording on vs off: HTTP 1 KiB c32 and c1     (issue 4)
    python bench/extra.py rss         # engine RSS after 200,000 exchanges of 16 KiB    (issue 4)
    python bench/extra.py faults      # 10 faults defined but disabled vs none, c32    (issue 5)
    python bench/extra.py idle        # idle RSS of an engine with 20 HTTP services     (issue 9)
    python bench/extra.py mitmproxy   # devamb vs mitmdump (reverse mode), c32 and c1   (issue 9)
    python bench/extra.py tui         # a headless TUI attached at 2,000 req/s; key to switch
    python bench/extra.py all         # every case above, one after the other

Same layout as bench/run.py: nginx (upstream) and wrk on CPU 0, the engine under test
(`python -m devamb up --headless PROFILE`, uvloop) on CPU 1; configurations interleaved over
rounds, medians, proxy CPU time per request. Each case prints a markdown table and writes it, with
every sample, to bench/results/extra-<case>-<time>.json|.md. Exit code 0 when every goal measured
passes, 1 otherwise. See bench/README.md, "More cases".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import machine
import report
from loadgen import Load, WrkError, run_wrk
from peers import (
    BENCH_DIR,
    LOAD_CPU,
    PROXY_CPU,
    REPO,
    Subject,
    Unavailable,
    Upstream,
    devamb_profile,
    direct,
    start_mitmproxy,
    start_upstream,
)
from procs import (
    HOST,
    Child,
    Children,
    StartError,
    cpu_seconds,
    free_port,
    pinned,
    read_status_kib,
)
from report import CASES, Case, Sample
from run import Plan, measure, progress, warm_up

C1, C1_CPU0, C32 = (next(c for c in CASES if c.key == key) for key in
                    ("http-1k-c1", "http-1k-c1-cpu0", "http-1k-c32"))
BUSY_LOAD = 1.5  # load average above which the report says the machine was busy
MITM_VENV = Path(tempfile.gettempdir()) / "devamb-bench-mitm"
MIB = 1024


# -- shared pieces -------------------------------------------------------------------------------


@dataclass
class Check:
    """One goal of an issue, judged on one run."""

    goal: str
    target: str
    measured: str
    passed: bool | None  # None: could not be measured
    value: float | None = None


@dataclass
class Result:
    """What one case found: markdown sections, goals, and everything for the JSON."""

    case: str
    command: str
    info: machine.Info
    sections: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)

    def markdown(self) -> str:
        parts = [machine.markdown(self.info), f"`{self.command}`", *self.sections]
        if self.checks:
            parts.append("**Goals**\n\n" + checks_table(self.checks))
        notes = self.notes + busy_note(self.info)
        if notes:
            parts.append("**Notes**\n\n" + "\n".join(f"- {note}" for note in notes))
        return "\n\n".join(parts) + "\n"

    def as_json(self) -> dict[str, object]:
        return {
            "case": self.case,
            "command": self.command,
            "machine": self.info,
            "goals": [asdict(c) for c in self.checks],
            "notes": self.notes + busy_note(self.info),
            **self.data,
        }


def checks_table(checks: Sequence[Check]) -> str:
    rows = ["| goal | target | measured | result |", "| --- | --- | ---: | --- |"]
    for check in checks:
        verdict = {True: "**pass**", False: "**FAIL**", None: "not measured"}[check.passed]
        rows.append(f"| {check.goal} | {check.target} | {check.measured} | {verdict} |")
    return "\n".join(rows)


def busy_note(info: machine.Info) -> list[str]:
    load = float(str(info["load_average"]).split()[0])
    if load <= BUSY_LOAD:
        return []
    return [
        f"the machine was busy (load average {load:.2f} on {info['cores']} CPUs at the start, "
        "other sessions' tests): absolute figures are low and noisy; read the ratios measured "
        "within the run and the CPU us/req"
    ]


def engine_env(loop: str = "uvloop") -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {"DEVAMB_LOOP": loop, "PYTHONPATH": pythonpath}


def start_engine(
    children: Children, base: Path, key: str, label: str, profile: str, ports: Sequence[int]
) -> Subject:
    """`python -m devamb up --headless` on PROFILE (text), pinned to the proxy CPU."""
    root = base / key
    root.mkdir(parents=True, exist_ok=True)
    path = root / "devamb.yaml"
    path.write_text(profile)
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(path)]
    child = children.spawn(key, argv, cpu=PROXY_CPU, env=engine_env(), cwd=root)
    children.wait_listening(child, list(ports), timeout=30)
    http = {"http": ports[0]} if ports else {}
    return Subject(key, label, "devamb", http, pid=child.pid, loop="uvloop")


def socket_of(base: Path, key: str) -> Path:
    from devamb.control.workdir import Workdir

    return Workdir.beside(base / key / "devamb.yaml").socket


def control_get(socket: Path, path: str) -> object:
    """GET on the engine's control socket (curl is not needed: a blocking aiohttp call)."""
    import aiohttp

    async def get() -> object:
        connector = aiohttp.UnixConnector(path=str(socket))
        async with aiohttp.ClientSession(connector=connector) as client, client.get(
            f"http://devamb{path}"
        ) as response:
            return await response.json(content_type=None)

    return asyncio.run(get())


def http_profile(port: int, upstream: Upstream, extra: str = "") -> str:
    """One HTTP service on the upstream; `extra` is added to the service (indented 4)."""
    lines = [
        "version: 1",
        "name: bench",
        "services:",
        "  http:",
        f"    listen: {port}",
        "    target: up",
        "    targets:",
        f"      up: http://{HOST}:{upstream.port}",
    ]
    if extra:
        lines.append(textwrap.indent(textwrap.dedent(extra).strip("\n"), "    "))
    return "\n".join(lines) + "\n"


def ab_measure(
    subjects: Sequence[Subject], cases: Sequence[Case], rounds: int, seconds: int
) -> list[Sample]:
    """bench/run.py's loop: every (case, subject) once a round, the order rotating."""
    warm_up(subjects)
    plan = Plan(rounds, seconds, float("inf"), (), False, tuple(cases))
    samples, notes, _ = measure(plan, subjects)
    for note in notes:
        progress(note)
    return samples


def paired_ratio(samples: Sequence[Sample], case: str, ours: str, theirs: str) -> float | None:
    """Median over rounds of req/s(ours) / req/s(theirs), each pair measured back to back."""
    by_round: dict[int, dict[str, float]] = {}
    for sample in samples:
        if sample.case == case:
            by_round.setdefault(sample.round, {})[sample.subject] = sample.result.rps
    ratios = [r[ours] / r[theirs] for r in by_round.values() if r.get(theirs) and ours in r]
    return statistics.median(ratios) if ratios else None


def round_ratios(samples: Sequence[Sample], case: str, ours: str, theirs: str) -> list[float]:
    by_round: dict[int, dict[str, float]] = {}
    for sample in samples:
        if sample.case == case:
            by_round.setdefault(sample.round, {})[sample.subject] = sample.result.rps
    return sorted(r[ours] / r[theirs] for r in by_round.values() if r.get(theirs) and ours in r)


def spread_text(ratios: Sequence[float]) -> str:
    """The per-round ratios' interquartile range, to show how far one run can be trusted."""
    if len(ratios) < 4:
        return ""
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    low, high = min(ratios), max(ratios)
    return f"; per-round ratios {low:.2f} to {high:.2f}, middle half {q1:.2f} to {q3:.2f}"


def cpu_ratio(summaries: report.Summaries, case: str, ours: str, theirs: str) -> float | None:
    a, b = summaries.get((case, ours)), summaries.get((case, theirs))
    if a is None or b is None or not a.cpu_us or not b.cpu_us:
        return None
    return a.cpu_us / b.cpu_us


def fmt_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / MIB:.1f}"


def results_dir() -> Path:
    path = BENCH_DIR / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(result: Result, out: Path | None) -> Path:
    out = out or results_dir() / f"extra-{result.case}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(result.markdown())
    return out


class Bench:
    """A temp dir, the children in it and the nginx upstream; everything ends with the `with`."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="devamb-bench-extra-"))
        self.children = Children(self.workdir)
        self.upstream: Upstream | None = None

    def __enter__(self) -> Bench:
        self.upstream = start_upstream(self.children, self.workdir)
        www = self.workdir / "upstream" / "www"
        if www.is_dir():
            (www / "16k").write_bytes(os.urandom(16 * 1024))
        return self

    def __exit__(self, *exc: object) -> None:
        self.children.stop_all()
        if self.keep:
            progress(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def up(self) -> Upstream:
        assert self.upstream is not None
        return self.upstream


# -- 1. recording on vs off (issue 4) -------------------------------------------------------------

RECORDING_OFF = "inspect: {bodies: 0, keep: 0}"


def case_recording(args: argparse.Namespace, result: Result) -> None:
    rounds, seconds = args.rounds or 4, args.duration or 4
    cases = (C1, C1_CPU0, C32)
    with Bench(args.keep) as bench:
        on_port, off_port = free_port(), free_port()
        subjects = [
            direct(bench.up),
            start_engine(bench.children, bench.workdir, "rec-on", "devamb, recording on",
                         http_profile(on_port, bench.up), [on_port]),
            start_engine(bench.children, bench.workdir, "rec-off", "devamb, recording off",
                         http_profile(off_port, bench.up, RECORDING_OFF), [off_port]),
        ]
        samples = ab_measure(subjects, cases, rounds, seconds)
    summaries = report.summarize(samples)
    result.sections.append(
        f"Rounds: {rounds}, {seconds} s per configuration, interleaved; medians. "
        f"\"recording off\" is the service's `{RECORDING_OFF}`.\n\n"
        + report.results_table(cases, summaries, subjects)
    )
    cost = paired_ratio(samples, C32.key, "rec-on", "rec-off")
    median_cost = report.ratio(summaries, C32.key, "rec-on", "rec-off")
    cpu = cpu_ratio(summaries, C32.key, "rec-on", "rec-off")
    if cost is not None:
        ratios = round_ratios(samples, C32.key, "rec-on", "rec-off")
        result.checks.append(Check(
            "recording costs ≤ 15 % of throughput (HTTP 1 KiB c32, on/off per round, median)",
            "on/off ≥ 0.85", f"{cost:.2f}x{spread_text(ratios)}", cost >= 0.85, cost))
    else:
        result.checks.append(Check("recording cost", "on/off ≥ 0.85", "-", None))
    if cpu is not None:  # where the engine is CPU-bound, capacity goes as 1 / CPU per request
        result.checks.append(Check(
            "recording costs ≤ 15 % of capacity (c32 CPU per request, on/off, medians)",
            "≤ 1.18x (1 / 0.85)", f"{cpu:.2f}x", cpu <= 1 / 0.85, cpu))
    extra = []
    if median_cost is not None:
        extra.append(f"ratio of the median req/s {median_cost:.2f}x")
    if extra:
        result.notes.append("HTTP 1 KiB c32, recording on vs off: " + ", ".join(extra))
    for case in (C1, C1_CPU0):
        on = report.added_p50(summaries, case.key, "rec-on")
        off = report.added_p50(summaries, case.key, "rec-off")
        if on is not None and off is not None:
            result.notes.append(
                f"{case.title}: added p50 recording on {on:.3f} ms, off {off:.3f} ms "
                f"(difference {on - off:+.3f} ms)"
            )
    result.data.update(
        summaries=[asdict(s) for s in summaries.values()],
        samples=[asdict(s) for s in samples],
        subjects=[asdict(s) for s in subjects],
        c32_on_off_paired=cost,
        c32_on_off_cpu=cpu,
    )


# -- 1b. RSS after 200,000 exchanges of 16 KiB (issue 4) ------------------------------------------

BUDGET_MIB = 64  # the default store budget (devamb/inspect/store.py DEFAULT_BUDGET)


def record_size(detail: dict) -> int:
    """Exchange.approx_size() of one record, from its detail on the control API."""
    from devamb.inspect.exchange import RECORD_OVERHEAD

    size = RECORD_OVERHEAD
    for key in ("request_body", "response_body"):
        body = detail.get(key)
        size += (body.get("captured") or 0) if isinstance(body, dict) else 0
    for key in ("request_headers", "response_headers"):
        size += sum(len(k) + len(v) + 16 for k, v in detail.get(key) or [])
    return size


def store_estimate(socket: Path, samples: int = 20) -> tuple[int | None, int | None]:
    """(exchanges kept, estimated store bytes). The store's own count is not exposed: this is
    the kept count x the mean size (the store's formula) of `samples` records spread over it."""
    try:
        kept = control_get(socket, "/v1/exchanges?limit=100000")
        assert isinstance(kept, list)
        if not kept:
            return 0, 0
        step = max(1, len(kept) // samples)
        sizes = []
        for summary in kept[::step][:samples]:
            detail = control_get(socket, f"/v1/exchanges/{summary['id']}")
            assert isinstance(detail, dict)
            sizes.append(record_size(detail))
    except Exception as exc:  # an estimate, never a failure
        progress(f"store estimate failed: {exc!r}")
        return None, None
    return len(kept), int(len(kept) * statistics.mean(sizes))


def case_rss(args: argparse.Namespace, result: Result) -> None:
    target = args.requests
    chunk = args.duration or 15
    with Bench(args.keep) as bench:
        port = free_port()
        engine = start_engine(bench.children, bench.workdir, "rss", "devamb, recording on",
                              http_profile(port, bench.up), [port])
        assert engine.pid is not None
        url = f"http://{HOST}:{port}/16k"
        start_kib = read_status_kib(engine.pid, "VmRSS")
        total, errors, rows, started = 0, 0, [], time.monotonic()
        cpu0 = cpu_seconds(engine.pid) or 0.0
        while total < target and time.monotonic() - started < args.max_seconds:
            res = run_wrk(url, Load(32, 2, chunk), LOAD_CPU)
            total += res.requests
            errors += res.errors
            rss = read_status_kib(engine.pid, "VmRSS")
            rows.append({"requests": total, "rps": res.rps, "rss_kib": rss})
            progress(f"{total:,} exchanges, {res.rps:,.0f} req/s, VmRSS {mib(rss)} MiB")
        cpu = (cpu_seconds(engine.pid) or 0.0) - cpu0
        time.sleep(1.0)
        rss = read_status_kib(engine.pid, "VmRSS")
        hwm = read_status_kib(engine.pid, "VmHWM")
        kept, store = store_estimate(socket_of(bench.workdir, "rss"))
    lines = ["| exchanges | req/s (that chunk) | VmRSS MiB |", "| ---: | ---: | ---: |"]
    lines.append(f"| 0 (after start) | | {mib(start_kib)} |")
    lines += [f"| {r['requests']:,} | {r['rps']:,.0f} | {mib(r['rss_kib'])} |" for r in rows]
    lines.append(f"| **{total:,}** (1 s after the load) | | **{mib(rss)}** |")
    store_text = "-" if store is None else f"{store / 2**20:.1f} MiB in {kept:,} exchanges (est.)"
    result.sections.append(
        f"wrk -t2 -c32 on a 16 KiB file in {chunk} s runs until ≥ {target:,} exchanges; "
        f"engine VmRSS after each run. Errors: {errors}. Engine CPU per exchange: "
        f"{1e6 * cpu / max(1, total):,.0f} us.\n\n" + "\n".join(lines)
        + f"\n\nVmHWM (peak) **{mib(hwm)} MiB**; store {store_text}."
    )
    limit = (BUDGET_MIB + 40) * MIB
    for name, value in (("VmRSS", rss), ("VmHWM (peak)", hwm)):
        passed = None if value is None or total < target else value <= limit
        result.checks.append(Check(
            f"{name} after {total:,} exchanges of 16 KiB", f"≤ {BUDGET_MIB} + 40 MiB",
            f"{mib(value)} MiB", passed, None if value is None else value / MIB))
    if rss is not None and start_kib is not None:
        growth = rss - start_kib
        result.checks.append(Check(
            "VmRSS growth over the engine's own RSS after start (the other reading)",
            f"≤ {BUDGET_MIB} + 40 MiB", f"{mib(growth)} MiB",
            None if total < target else growth <= limit, growth / MIB))
    if total < target:
        result.notes.append(f"only {total:,} exchanges within {args.max_seconds} s")
    result.data.update(chunks=rows, start_kib=start_kib, rss_kib=rss, hwm_kib=hwm,
                       exchanges=total, errors=errors, kept=kept, store_bytes_estimate=store,
                       cpu_us_per_exchange=1e6 * cpu / max(1, total))


# -- 2. faults defined but disabled (issue 5) -----------------------------------------------------

DISABLED_FAULTS = """\
faults:
  slow: {kind: latency, delay: 300ms, jitter: 100ms, distribution: normal, enabled: false}
  slow-charges: {kind: latency, delay: 1s, match: {path: /x*}, probability: 0.5, enabled: false}
  flaky: {kind: abort, status: 503, after: 2, times: 3, enabled: false}
  resets: {kind: reset, after_bytes: 100, probability: 0.3, enabled: false}
  hang: {kind: timeout, timeout: 5s, match: {method: [POST]}, enabled: false}
  trickle: {kind: bandwidth, rate: 16KiB, direction: both, enabled: false}
  pieces: {kind: slicer, size: 64, delay: 10ms, enabled: false}
  cut: {kind: limit_data, bytes: 1KiB, enabled: false}
  linger: {kind: slow_close, delay: 1s, enabled: false}
  broken: {kind: malformed, mode: bad-chunk, match: {header: {X-User: "test-*"}}, enabled: false}
  outage: {kind: down, enabled: false}
"""


def case_faults(args: argparse.Namespace, result: Result) -> None:
    rounds, seconds = args.rounds or 8, args.duration or 5
    with Bench(args.keep) as bench:
        none_port, off_port = free_port(), free_port()
        subjects = [
            start_engine(bench.children, bench.workdir, "no-faults", "devamb, no faults",
                         http_profile(none_port, bench.up), [none_port]),
            start_engine(bench.children, bench.workdir, "faults-off",
                         "devamb, 11 faults defined, all disabled",
                         http_profile(off_port, bench.up, DISABLED_FAULTS), [off_port]),
        ]
        listed = control_get(socket_of(bench.workdir, "faults-off"), "/v1/faults")
        samples = ab_measure(subjects, (C32,), rounds, seconds)
    summaries = report.summarize(samples)
    count = sum(len(v) for v in listed.values()) if isinstance(listed, dict) else None
    result.sections.append(
        f"Rounds: {rounds}, {seconds} s per configuration, interleaved; medians. The faults "
        f"(one or more of every kind, all `enabled: false`; the engine lists {count}):\n\n"
        f"```yaml\n{DISABLED_FAULTS}```\n\n" + report.results_table((C32,), summaries, subjects)
    )
    paired = paired_ratio(samples, C32.key, "faults-off", "no-faults")
    medians = report.ratio(summaries, C32.key, "faults-off", "no-faults")
    cpu = cpu_ratio(summaries, C32.key, "faults-off", "no-faults")
    if paired is not None:
        ratios = round_ratios(samples, C32.key, "faults-off", "no-faults")
        result.checks.append(Check(
            "disabled faults: throughput within 5 % of none (c32, per-round ratio, median)",
            "≥ 0.95x", f"{paired:.3f}x{spread_text(ratios)}", paired >= 0.95, paired))
    if cpu is not None:
        result.checks.append(Check(
            "disabled faults: CPU per request within 5 % of none (medians)",
            "≤ 1.05x", f"{cpu:.3f}x", cpu <= 1.05, cpu))
    if medians is not None:
        result.notes.append(f"ratio of the median req/s: {medians:.3f}x")
    result.data.update(
        summaries=[asdict(s) for s in summaries.values()],
        samples=[asdict(s) for s in samples],
        faults_listed=listed,
        paired_ratio=paired,
        cpu_ratio=cpu,
    )


# -- 3. idle RSS with 20 services (issue 9) -------------------------------------------------------


def many_services(ports: Sequence[int], upstream: Upstream) -> str:
    """20 HTTP services on the upstream; every 4th starts on its built-in echo target."""
    lines = ["version: 1", "name: bench-20", "services:"]
    for index, port in enumerate(ports):
        lines += [
            f"  svc{index:02d}:",
            f"    listen: {port}",
            f"    target: {'debug' if index % 4 == 3 else 'up'}",
            "    targets:",
            f"      up: http://{HOST}:{upstream.port}/",
            "      debug: echo",
        ]
    return "\n".join(lines) + "\n"


def touch_all(ports: Sequence[int]) -> None:
    for port in ports:
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://{HOST}:{port}/1k"],
                       timeout=10, check=False)


def case_idle(args: argparse.Namespace, result: Result) -> None:
    repeats, settle_s = args.rounds or 3, 5.0
    rows: list[dict[str, object]] = []
    with Bench(args.keep) as bench:
        for repeat in range(1, repeats + 1):
            for label, count in (("2 services (bench/run.py's)", 2), ("20 HTTP services", 20)):
                key = f"idle{count}-{repeat}"
                ports = [free_port() for _ in range(count)]
                if count == 2:
                    profile = devamb_profile(ports[0], ports[1], bench.up)
                else:
                    profile = many_services(ports, bench.up)
                engine = start_engine(bench.children, bench.workdir, key, label, profile, ports)
                assert engine.pid is not None
                listening = read_status_kib(engine.pid, "VmRSS")
                time.sleep(settle_s)
                idle = read_status_kib(engine.pid, "VmRSS")
                if count == 20 and shutil.which("curl"):
                    touch_all(ports)
                    time.sleep(1.0)
                    touched = read_status_kib(engine.pid, "VmRSS")
                else:
                    touched = None
                rows.append({"label": label, "services": count, "repeat": repeat,
                             "listening_kib": listening, "idle_kib": idle,
                             "after_one_request_each_kib": touched,
                             "hwm_kib": read_status_kib(engine.pid, "VmHWM")})
                progress(f"{label}, repeat {repeat}: idle VmRSS {mib(idle)} MiB")
                child = next(c for c in bench.children.children if c.pid == engine.pid)
                bench.children.stop(child)

    def med(count: int, field_name: str) -> int | None:
        values = [r[field_name] for r in rows if r["services"] == count and r[field_name]]
        return int(statistics.median(values)) if values else None  # type: ignore[arg-type]

    table = [
        "| engine | VmRSS when listening MiB | VmRSS idle (+5 s) MiB | after one request "
        "each MiB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, count in (("2 services (bench/run.py's)", 2), ("20 HTTP services", 20)):
        table.append(f"| {label} | {mib(med(count, 'listening_kib'))} "
                     f"| {mib(med(count, 'idle_kib'))} "
                     f"| {mib(med(count, 'after_one_request_each_kib'))} |")
    idle20 = med(20, "idle_kib")
    result.sections.append(
        f"Each engine started {repeats} times (alternating), VmRSS read when all listeners "
        f"accept and again {settle_s:.0f} s later; medians. 20 services: URL targets on the "
        "nginx upstream, every 4th active on `echo`.\n\n" + "\n".join(table)
    )
    result.checks.append(Check(
        "engine RSS idle with 20 services", "≤ 80 MiB", f"{mib(idle20)} MiB",
        None if idle20 is None else idle20 <= 80 * MIB,
        None if idle20 is None else idle20 / MIB))
    result.data.update(rows=rows)


# -- 4. mitmproxy (issue 9) ---------------------------------------------------------------------


def find_python_for_mitm() -> str:
    """mitmproxy's current releases need Python >= 3.12: the newest interpreter that runs."""
    candidates = ["python3.13", "python3.12"]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        for version in sorted(pyenv.iterdir(), reverse=True):
            candidates.append(str(version / "bin" / "python3"))
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path is None:
            continue
        done = subprocess.run([path, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == "True":
            return path
    return sys.executable


def ensure_mitmdump(explicit: str | None) -> tuple[str | None, str]:
    """(path to mitmdump, how it was found); installs into MITM_VENV when there is none."""
    if explicit:
        return explicit, "given with --mitmdump"
    venv_bin = MITM_VENV / "bin" / "mitmdump"
    if venv_bin.is_file():
        return str(venv_bin), f"reused {MITM_VENV}"
    if shutil.which("mitmdump"):
        return str(shutil.which("mitmdump")), "on PATH"
    python = find_python_for_mitm()
    progress(f"installing mitmproxy from PyPI into {MITM_VENV} ({python})")
    log = Path(tempfile.gettempdir()) / "devamb-bench-mitm-install.log"
    with log.open("w") as out:
        steps = [[python, "-m", "venv", str(MITM_VENV)],
                 [str(MITM_VENV / "bin" / "pip"), "install", "-q", "mitmproxy"]]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                tail = log.read_text(errors="replace").splitlines()[-3:]
                return None, f"install failed ({' '.join(step[:3])}): {' / '.join(tail)}"
    return str(venv_bin), f"installed into {MITM_VENV} with {python}"


def case_mitmproxy(args: argparse.Namespace, result: Result) -> None:
    rounds, seconds = args.rounds or 3, args.duration or 5
    cases = (C1, C32)
    mitmdump, how = ensure_mitmdump(args.mitmdump)
    result.notes.append(f"mitmdump: {how}")
    if mitmdump is None:
        result.checks.append(Check("devamb ≥ 10x mitmproxy (c32)", "≥ 10x", "-", None))
        return
    version = subprocess.run([mitmdump, "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()
    result.info["mitmproxy"] = version[0].split()[-1] if version else "?"
    with Bench(args.keep) as bench:
        port = free_port()
        subjects = [
            direct(bench.up),
            start_engine(bench.children, bench.workdir, "devamb", "devamb (uvloop, recording on)",
                         http_profile(port, bench.up), [port]),
        ]
        try:
            subjects.append(start_mitmproxy(bench.children, bench.workdir, bench.up, mitmdump))
        except (Unavailable, StartError) as exc:
            result.notes.append(f"mitmproxy did not start: {exc}")
        samples = ab_measure(subjects, cases, rounds, seconds)
    summaries = report.summarize(samples)
    result.sections.append(
        f"Rounds: {rounds}, {seconds} s per configuration, interleaved; medians. "
        "`mitmdump --mode reverse:http://127.0.0.1:UP -q --set flow_detail=0`, on CPU 1 like "
        "devamb.\n\n" + report.results_table(cases, summaries, subjects)
    )
    for case in cases:
        ratio = report.ratio(summaries, case.key, "devamb", "mitmproxy")
        paired = paired_ratio(samples, case.key, "devamb", "mitmproxy")
        cpu = cpu_ratio(summaries, case.key, "mitmproxy", "devamb")
        result.checks.append(Check(
            f"devamb ≥ 10x mitmproxy's throughput ({case.title})",
            "≥ 10x",
            "-" if ratio is None else f"{ratio:.2f}x (per round {fmt_x(paired)}; CPU/req "
            f"mitmproxy/devamb {fmt_x(cpu)})",
            None if ratio is None else ratio >= 10, ratio))
    result.data.update(summaries=[asdict(s) for s in summaries.values()],
                       samples=[asdict(s) for s in samples])


# -- 5. TUI attached (issue 3) --------------------------------------------------------------------

RATE = 2000  # requests per second, the figure


@dataclass
class Paced:
    subject: str
    round: int
    rate: int
    result: dict[str, float]  # bench/paced.py's report
    engine_cpu_us: float | None
    tui_cpu_us: float | None


def paced_argv(url: str, seconds: int, rate: int) -> list[str]:
    argv = [sys.executable, str(BENCH_DIR / "paced.py"), url, "--rate", str(rate)]
    return pinned([*argv, "--seconds", str(seconds)], LOAD_CPU)


def run_paced(url: str, seconds: int, rate: int) -> dict[str, float]:
    done = subprocess.run(paced_argv(url, seconds, rate), capture_output=True, text=True,
                          timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise WrkError(f"paced.py exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def tui_profile(port: int, upstream: Upstream) -> str:
    return textwrap.dedent(f"""\
        version: 1
        name: bench-tui
        services:
          http:
            listen: {port}
            target: up
            targets:
              up: http://{HOST}:{upstream.port}
              up2: http://{HOST}:{upstream.port}
              debug: echo
        """)


def start_tui(children: Children, socket: Path, name: str, out: Path | None, presses: int = 0,
              service: str = "http") -> Child:
    argv = [sys.executable, str(BENCH_DIR / "tui_driver.py"), str(socket), "--service", service]
    if out is not None:
        argv += ["--presses", str(presses), "--out", str(out)]
    # The TUI shares CPU 0 with wrk and nginx: CPU 1 is the engine's, as in every case here.
    child = children.spawn(name, argv, cpu=LOAD_CPU, env=engine_env())
    deadline = time.monotonic() + 60
    while "READY" not in child.log.read_text(errors="replace"):
        if child.popen.poll() is not None or time.monotonic() > deadline:
            raise StartError(f"the TUI did not attach:\n{child.log_tail()}")
        time.sleep(0.05)
    return child


def case_tui(args: argparse.Namespace, result: Result) -> None:
    rounds, seconds = args.rounds or 4, args.duration or 4
    rates = [int(r) for r in args.rates.split(",")]
    with Bench(args.keep) as bench:
        port = free_port()
        engine = start_engine(bench.children, bench.workdir, "tui-engine", "devamb",
                              tui_profile(port, bench.up), [port])
        assert engine.pid is not None
        socket = socket_of(bench.workdir, "tui-engine")
        engine_url, direct_url = f"http://{HOST}:{port}/1k", f"http://{HOST}:{bench.up.port}/1k"
        run_wrk(engine_url, Load(32, 2, 1), LOAD_CPU)  # warm-up
        samples: list[Paced] = []
        order = ["direct", "engine", "engine+tui"]
        for round_no in range(1, rounds + 1):
            for rate in rates:
                shift = (round_no - 1) % len(order)
                for subject in order[shift:] + order[:shift]:
                    url = direct_url if subject == "direct" else engine_url
                    s = paced_once(bench, subject, round_no, seconds, rate, engine.pid, socket,
                                   url)
                    samples.append(s)
                    progress(f"round {round_no}/{rounds} {rate}/s {subject:<11} "
                             f"{s.result['rate']:,.0f} req/s p50 {s.result['p50_ms']:.3f} "
                             f"p99 {s.result['p99_ms']:.3f} ms "
                             f"engine cpu {s.engine_cpu_us or 0:.0f} us/req")
        switches = [measure_switch(bench, socket, engine_url, args.presses, rate)
                    for rate in (0, rates[0])]
    tui_section(result, samples, switches, rates, rounds, seconds)


def paced_once(bench: Bench, subject: str, round_no: int, seconds: int, rate: int,
               engine_pid: int, socket: Path, url: str) -> Paced:
    tui = None
    if subject == "engine+tui":
        tui = start_tui(bench.children, socket, f"tui-{round_no}-{rate}", None)
        time.sleep(1.0)  # let it draw the first screens and settle
    try:
        before = cpu_seconds(engine_pid)
        tui_before = cpu_seconds(tui.pid) if tui else None
        res = run_paced(url, seconds, rate)
        after = cpu_seconds(engine_pid)
        tui_after = cpu_seconds(tui.pid) if tui else None
    finally:
        if tui is not None:
            bench.children.stop(tui)
    per = max(1, int(res["requests"]))
    engine_cpu = None
    if subject != "direct" and before is not None and after is not None:
        engine_cpu = (after - before) / per * 1e6
    tui_cpu = None
    if tui_before is not None and tui_after is not None:
        tui_cpu = (tui_after - tui_before) / per * 1e6
    return Paced(subject, round_no, rate, res, engine_cpu, tui_cpu)


def measure_switch(bench: Bench, socket: Path, url: str, presses: int,
                   rate: int) -> dict[str, object]:
    """Key presses in an attached TUI (the driver times them), idle or under a paced load."""
    out = bench.workdir / f"presses-{rate}.json"
    tui = start_tui(bench.children, socket, f"tui-presses-{rate}", out, presses)
    load = None
    if rate:
        load = subprocess.Popen(paced_argv(url, 10 + 2 * presses, rate),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tui.popen.wait(60 + 5 * presses)
    except subprocess.TimeoutExpired:
        progress("the key-press driver did not finish")
    finally:
        if load is not None:
            load.terminate()
            load.wait(10)
        bench.children.stop(tui)
    if not out.is_file():
        return {"rate": rate, "error": tui.log_tail()}
    found = json.loads(out.read_text())
    found["rate"] = rate
    return found


def summarize_paced(samples: Sequence[Paced], subject: str, rate: int) -> dict[str, float | None]:
    group = [s for s in samples if s.subject == subject and s.rate == rate]

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return {
        "rps": med([s.result["rate"] for s in group]),
        "p50": med([s.result["p50_ms"] for s in group]),
        "p99": med([s.result["p99_ms"] for s in group]),
        "engine_cpu_us": med([s.engine_cpu_us for s in group]),
        "tui_cpu_us": med([s.tui_cpu_us for s in group]),
        "errors": sum(s.result["errors"] + s.result["unanswered"] for s in group),
    }


def fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def median_text(values: object) -> str:
    """The median of the numbers in a list (None entries are timeouts: counted as such)."""
    if not isinstance(values, list):
        return "-"
    numbers = [v for v in values if isinstance(v, int | float)]
    missing = len(values) - len(numbers)
    text = f"{statistics.median(numbers):.1f}" if numbers else "-"
    return text + (f" ({missing} timed out)" if missing else "")


TUI_LABELS = {"direct": "direct (nginx)", "engine": "devamb, no TUI",
              "engine+tui": "devamb, headless TUI attached"}


def tui_section(result: Result, samples: Sequence[Paced], switches: list[dict[str, object]],
                rates: list[int], rounds: int, seconds: int) -> None:
    rows = [
        "| rate | path | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| engine CPU us/req | TUI CPU us/req | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    summaries, added_all = {}, {}
    for rate in rates:
        sums = {name: summarize_paced(samples, name, rate) for name in TUI_LABELS}
        added: dict[str, dict[str, float | None]] = {}
        for name in ("engine", "engine+tui"):
            added[name] = {}
            for pct in ("p50", "p99"):
                ours, base = sums[name][pct], sums["direct"][pct]
                added[name][pct] = None if ours is None or base is None else ours - base
        summaries[rate], added_all[rate] = sums, added
        for name, s in sums.items():
            a = added.get(name, {})
            rows.append(
                f"| {rate:,}/s | {TUI_LABELS[name]} | {fmt(s['rps'], '{:,.0f}')} "
                f"| {fmt(s['p50'])} | {fmt(s['p99'])} | {fmt(a.get('p50'))} "
                f"| {fmt(a.get('p99'))} | {fmt(s['engine_cpu_us'], '{:,.0f}')} "
                f"| {fmt(s['tui_cpu_us'], '{:,.0f}')} | {s['errors']} |"
            )
        judged = rate == RATE
        for pct in ("p50", "p99"):
            without, with_tui = added["engine"][pct], added["engine+tui"][pct]
            if without is None or with_tui is None or without <= 0:
                continue
            ratio = with_tui / without
            text = f"{with_tui:.3f} vs {without:.3f} ms ({ratio:.2f}x)"
            if judged:
                result.checks.append(Check(
                    f"engine added {pct} at {rate:,}/s, TUI attached vs not", "≤ 1.10x", text,
                    ratio <= 1.10, ratio))
            else:
                result.notes.append(f"at {rate:,}/s, added {pct} TUI attached vs not: {text}")
        cpu_with, cpu_without = sums["engine+tui"]["engine_cpu_us"], sums["engine"]["engine_cpu_us"]
        if cpu_with and cpu_without:
            result.notes.append(
                f"at {rate:,}/s, engine CPU per request with the TUI attached / without: "
                f"{cpu_with / cpu_without:.2f}x ({cpu_with:.0f} vs {cpu_without:.0f} us)")
    result.sections.append(
        f"bench/paced.py (open loop: request i leaves at i / rate whatever the answers do, "
        f"keep-alive connections, on CPU 0), {seconds} s per run, {rounds} rounds, order "
        "rotating; medians; latency from the write of a request to the last byte of its "
        "response. The TUI is `ui.app.make_app(ControlClient(socket))` under Textual's "
        "`run_test()` (headless, 120x40) in its own process on CPU 0 (CPU 1 is the engine's), "
        "started before its run and stopped after it.\n\n" + "\n".join(rows)
    )
    switch_rows = [
        "| load | switches | digit key → switch ms (median) | min | max | `t` → picker shown ms "
        "| digit → the TUI shows it ms | control API switch ms (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for switch in switches:
        presses = switch.get("press_to_switch_ms")
        load = f"{switch['rate']:,} req/s" if switch.get("rate") else "idle"
        if not isinstance(presses, list) or not presses:
            result.notes.append(f"key presses ({load}) failed: {switch.get('error', switch)}")
            continue
        med = statistics.median(presses)
        switch_rows.append(
            f"| {load} | {len(presses)} | **{med:.1f}** | {min(presses):.1f} "
            f"| {max(presses):.1f} | {median_text(switch.get('t_to_picker_ms'))} "
            f"| {median_text(switch.get('digit_to_shown_in_tui_ms'))} "
            f"| {median_text(switch.get('api_switch_ms'))} |"
        )
        for problem in switch.get("problems") or []:  # type: ignore[union-attr]
            result.notes.append(f"key presses ({load}): {problem}")
        result.checks.append(Check(f"key press to switch ({load}), median", "reported",
                                   f"{med:.1f} ms", True, med))
    result.sections.append(
        "**Key press to switch.** In an attached TUI, `t` opens the target picker and a digit "
        "chooses (2 and 1 alternately); the keys go in as the terminal driver delivers them, "
        "and a second control connection polls `status` every 2 ms until the engine routes to "
        "the new target. \"The TUI shows it\": until the TUI's own view (fed by the engine's "
        "event stream) names the new target. The last column is the same switch made through "
        "the control API directly (no TUI), as a baseline.\n\n" + "\n".join(switch_rows)
    )
    result.data.update(samples=[asdict(s) for s in samples],
                       summaries={str(k): v for k, v in summaries.items()},
                       added={str(k): v for k, v in added_all.items()}, switches=switches)


# -- main -----------------------------------------------------------------------------------------

CASES_RUN: dict[str, Callable[[argparse.Namespace, Result], None]] = {
    "recording": case_recording,
    "rss": case_rss,
    "faults": case_faults,
    "idle": case_idle,
    "mitmproxy": case_mitmproxy,
    "tui": case_tui,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=[*CASES_RUN, "all"])
    parser.add_argument("--rounds", type=int, help="rounds (repeats for idle)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run")
    parser.add_argument("--requests", type=int, default=200_000, help="rss: exchanges to send")
    parser.add_argument("--max-seconds", type=int, default=240, help="rss: time limit")
    parser.add_argument("--presses", type=int, default=10, help="tui: switches to time")
    parser.add_argument("--rates", default=f"{RATE},1000",
                        help="tui: paced rates, the first is judged (default %(default)s)")
    parser.add_argument("--mitmdump", help="mitmproxy: the mitmdump to run (default: "
                        f"{MITM_VENV}/bin/mitmdump, installed there when missing)")
    parser.add_argument("--out", type=Path, help="JSON path (one case only)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    return parser.parse_args(argv)


def run_case(name: str, args: argparse.Namespace, command: str) -> bool:
    result = Result(name, command, machine.describe())
    started = time.monotonic()
    progress(f"case {name}")
    CASES_RUN[name](args, result)
    result.data["wall_seconds"] = round(time.monotonic() - started, 1)
    out = write(result, args.out if args.case != "all" else None)
    print(result.markdown(), flush=True)
    progress(f"wrote {out} and {out.with_suffix('.md')} in {result.data['wall_seconds']} s")
    return all(check.passed is not False for check in result.checks)


def main(argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    args = parse_args(argv)
    command = " ".join(["python bench/extra.py", *(sys.argv[1:] if argv is None else argv)])
    names = list(CASES_RUN) if args.case == "all" else [args.case]
    passed = [run_case(name, args, command) for name in names]
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
