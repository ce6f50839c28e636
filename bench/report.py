"""Medians, goals and the markdown/JSON report."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadgen import WrkResult
from peers import Subject


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    protocol: str  # which port of a subject carries it: "http" or "tcp"
    path: str
    connections: int
    threads: int
    one_cpu: bool = False  # move the proxy onto the load CPU for this case
    close: bool = False  # a new connection per request


CASES: tuple[Case, ...] = (
    Case("http-1k-c1", "HTTP 1 KiB, c1", "http", "/1k", 1, 1),
    Case("http-1k-c1-cpu0", "HTTP 1 KiB, c1, all on CPU 0", "http", "/1k", 1, 1, one_cpu=True),
    Case("http-1k-c32", "HTTP 1 KiB, c32", "http", "/1k", 32, 2),
    Case("http-1m-c8", "HTTP 1 MiB, c8", "http", "/1m", 8, 2),
    Case("tcp-1k-c32", "TCP relay, HTTP 1 KiB, c32", "tcp", "/1k", 32, 2),
)
# Opt-in (--churn): where socat pays a fork per connection. Leaves ~30k sockets in TIME_WAIT.
CHURN = Case(
    "tcp-1k-c32-close",
    "TCP relay, new connection per request, c32",
    "tcp",
    "/1k",
    32,
    2,
    close=True,
)


@dataclass(frozen=True)
class Sample:
    case: str
    subject: str
    round: int
    result: WrkResult
    cpu_us_per_request: float | None = None  # CPU time of the proxy under test


@dataclass(frozen=True)
class Summary:
    case: str
    subject: str
    rps: float
    p50_ms: float
    p99_ms: float
    spread_pct: float  # (max - min) / median of req/s over the rounds
    cpu_us: float | None  # median proxy CPU time per request
    errors: int
    rounds: int


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    subject: str
    value: float | None
    passed: bool | None  # None: could not be measured in this run
    detail: str


@dataclass(frozen=True)
class Memory:
    subject: str
    idle_kib: int | None
    peak_kib: int | None


Summaries = dict[tuple[str, str], Summary]


def summarize(samples: Iterable[Sample]) -> Summaries:
    grouped: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        grouped.setdefault((sample.case, sample.subject), []).append(sample)
    summaries: Summaries = {}
    for (case, subject), group in grouped.items():
        results = [s.result for s in group]
        cpu = [s.cpu_us_per_request for s in group if s.cpu_us_per_request is not None]
        rps = [r.rps for r in results]
        median_rps = statistics.median(rps)
        summaries[case, subject] = Summary(
            case=case,
            subject=subject,
            rps=median_rps,
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            spread_pct=100 * (max(rps) - min(rps)) / median_rps if median_rps else 0.0,
            cpu_us=statistics.median(cpu) if cpu else None,
            errors=sum(r.errors for r in results),
            rounds=len(results),
        )
    return summaries


def added_p50(summaries: Summaries, case: str, subject: str) -> float | None:
    through, direct = summaries.get((case, subject)), summaries.get((case, "direct"))
    if through is None or direct is None:
        return None
    return through.p50_ms - direct.p50_ms


def ratio(summaries: Summaries, case: str, subject: str, reference: str) -> float | None:
    ours, theirs = summaries.get((case, subject)), summaries.get((case, reference))
    if ours is None or theirs is None or theirs.rps == 0:
        return None
    return ours.rps / theirs.rps


def _ratio_goal(
    summaries: Summaries, name: str, case: str, subject: str, reference: str, minimum: float
) -> Goal:
    value = ratio(summaries, case, subject, reference)
    detail = f"req/s {case}: {subject} / {reference}"
    if value is None:
        return Goal(name, f"≥ {minimum:g}x", subject, None, None, f"{reference} not measured")
    return Goal(name, f"≥ {minimum:g}x", subject, value, value >= minimum, detail)


def goals(summaries: Summaries, devambs: Sequence[Subject]) -> list[Goal]:
    """The targets of issues 2 and 9, for every devamb engine measured."""
    found: list[Goal] = []
    for subject in devambs:
        for case, where in (("http-1k-c1", "proxy on CPU 1"), ("http-1k-c1-cpu0", "all on CPU 0")):
            added = added_p50(summaries, case, subject.key)
            found.append(
                Goal(
                    f"HTTP added p50 at c1 ({where})",
                    "≤ 0.25 ms",
                    subject.key,
                    added,
                    None if added is None else added <= 0.25,
                    f"p50 through devamb - p50 direct, {case}",
                )
            )
        found.append(
            _ratio_goal(
                summaries, "HTTP 1 KiB c32 vs nginx", "http-1k-c32", subject.key, "nginx", 0.15
            )
        )
        found.append(
            _ratio_goal(
                summaries, "TCP relay c32 vs socat", "tcp-1k-c32", subject.key, "socat", 1.5
            )
        )
        if any(key[1] == "envoy" for key in summaries):  # issue 22
            found.append(
                _ratio_goal(
                    summaries, "HTTP 1 KiB c32 vs Envoy", "http-1k-c32", subject.key, "envoy", 1.5
                )
            )
        found.extend(issue_22_goals(summaries, subject.key))
        if any(key[1] == "mitmproxy" for key in summaries):
            found.append(
                _ratio_goal(
                    summaries,
                    "HTTP 1 KiB c32 vs mitmproxy",
                    "http-1k-c32",
                    subject.key,
                    "mitmproxy",
                    10.0,
                )
            )
    return found


def issue_22_goals(summaries: Summaries, subject: str) -> list[Goal]:
    """Issue 22's throughput, CPU and latency goals (each needs its peer in this run)."""
    found: list[Goal] = []
    for case, reference, minimum in (
        ("http-1k-c32", "nginx", 0.5),
        ("http-1m-c8", "haproxy", 1.0),
        ("tcp-1k-c32", "direct", 0.85),
        ("tcp-1k-c32", "haproxy", 1.2),
    ):
        if any(key == (case, reference) for key in summaries):
            label = next(c.title for c in CASES if c.key == case)
            found.append(_ratio_goal(summaries, f"{label} vs {reference} (issue 22)", case,
                                     subject, reference, minimum))
    c32 = summaries.get(("http-1k-c32", subject))
    cpu = None if c32 is None else c32.cpu_us
    found.append(Goal("proxy CPU per exchange, HTTP 1 KiB c32 (issue 22)", "≤ 40 µs", subject,
                      cpu, None if cpu is None else cpu <= 40, "median CPU µs per request"))
    added = added_p50(summaries, "http-1k-c1-cpu0", subject)
    found.append(Goal("HTTP added p50 at c1, all on CPU 0 (issue 22)", "≤ 0.08 ms", subject,
                      added, None if added is None else added <= 0.08,
                      "p50 through devamb - p50 direct, http-1k-c1-cpu0"))
    return found


# The store's byte budget for records (devamb.inspect.store.DEFAULT_BUDGET: approx_size of the
# kept exchanges, each body kept up to `inspect.bodies`, 64 KiB by default) plus 40 MiB.
RECORD_BUDGET_MIB = 64
PEAK_GOAL_MIB = RECORD_BUDGET_MIB + 40


def peak_goals(peaks: dict[str, int | None]) -> list[Goal]:
    """Issue 22: peak RSS under the HTTP 1 MiB c8 case within the record budget + 40 MiB."""
    found = []
    for subject, kib in peaks.items():
        mib = None if kib is None else kib / 1024
        found.append(Goal(
            "peak RSS (VmHWM) after HTTP 1 MiB c8", f"≤ {PEAK_GOAL_MIB} MiB", subject, mib,
            None if mib is None else mib <= PEAK_GOAL_MIB,
            f"record budget {RECORD_BUDGET_MIB} MiB + 40 MiB",
        ))
    return found


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def results_table(cases: Sequence[Case], summaries: Summaries, subjects: Sequence[Subject]) -> str:
    rows = [
        "| case | path | req/s | x direct | p50 ms | p99 ms | added p50 ms | proxy CPU us/req "
        "| spread | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        for subject in subjects:
            summary = summaries.get((case.key, subject.key))
            if summary is None:
                continue
            vs_direct, added = "", ""
            if subject.kind != "direct":
                vs_direct = _times(ratio(summaries, case.key, subject.key, "direct"))
                added = _ms(added_p50(summaries, case.key, subject.key))
            rows.append(
                f"| {case.title} | {subject.label} | {summary.rps:,.0f} | {vs_direct} "
                f"| {_ms(summary.p50_ms)} | {_ms(summary.p99_ms)} | {added} "
                f"| {'' if summary.cpu_us is None else f'{summary.cpu_us:,.0f}'} "
                f"| ±{summary.spread_pct / 2:.0f} % | {summary.errors} |"
            )
    return "\n".join(rows)


def goals_table(found: Sequence[Goal], subjects: Sequence[Subject]) -> str:
    labels = {s.key: s.label for s in subjects}
    rows = ["| goal | target | engine | measured | result |", "| --- | --- | --- | ---: | --- |"]
    for goal in found:
        if goal.value is None:
            measured, verdict = "-", f"not measured ({goal.detail})"
        else:
            if goal.target.endswith("MiB"):
                measured = f"{goal.value:.1f} MiB"
            elif goal.target.endswith("µs"):
                measured = f"{goal.value:.0f} µs"
            elif goal.target.endswith("ms"):
                measured = f"{goal.value:.3f} ms"
            else:
                measured = _times(goal.value)
            verdict = "**pass**" if goal.passed else "**FAIL**"
        rows.append(
            f"| {goal.name} | {goal.target} | {labels.get(goal.subject, goal.subject)} "
            f"| {measured} | {verdict} |"
        )
    return "\n".join(rows)


def loops_table(cases: Sequence[Case], summaries: Summaries) -> str | None:
    """uvloop vs the default asyncio loop, case by case (only with --loop both)."""
    if not any(key[1] == "devamb-asyncio" for key in summaries) or not any(
        key[1] == "devamb-uvloop" for key in summaries
    ):
        return None
    rows = [
        "| case | uvloop req/s | asyncio req/s | asyncio/uvloop | uvloop p50 ms | asyncio p50 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in cases:
        uv, aio = (
            summaries.get((case.key, "devamb-uvloop")),
            summaries.get((case.key, "devamb-asyncio")),
        )
        if uv is None or aio is None:
            continue
        rows.append(
            f"| {case.title} | {uv.rps:,.0f} | {aio.rps:,.0f} | {_times(aio.rps / uv.rps)} "
            f"| {_ms(uv.p50_ms)} | {_ms(aio.p50_ms)} |"
        )
    return "\n".join(rows)


def memory_table(memory: Sequence[Memory], subjects: Sequence[Subject]) -> str:
    labels = {s.key: s.label for s in subjects}
    rows = [
        "| process | RSS after start MiB | peak RSS (VmHWM) MiB |",
        "| --- | ---: | ---: |",
    ]
    rows += [
        f"| {labels.get(m.subject, m.subject)} | {_mib(m.idle_kib)} | {_mib(m.peak_kib)} |"
        for m in memory
    ]
    return "\n".join(rows)
