"""Where a devamb engine spends its CPU under load: py-spy samples while wrk runs.

Runs after the measured rounds (sampling slows the engine down), writes py-spy's collapsed
stacks (`*.folded`, one stack per line, flamegraph.pl / speedscope read them) and summarises
them as the functions with the most own time and the devamb functions with the most total time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen import Load, WrkError, run_wrk
from peers import LOAD_CPU, REPO, Subject
from procs import pinned
from report import Case

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")
# Frames every engine stack passes through: no information in their totals.
_ENTRY = ("devamb/__main__.py", "devamb/cli/main.py:up", "devamb/engine/runner.py:run_engine")


@dataclass(frozen=True)
class Profile:
    subject: str
    case: str
    samples: int
    own: list[tuple[str, float]]  # function, share of samples (0..1)
    devamb_total: list[tuple[str, float]]
    devamb_lines: list[tuple[str, float]]  # devamb source lines with the most own time
    components: list[tuple[str, float]]  # own time by devamb file / package
    folded: str


def available() -> bool:
    return shutil.which("py-spy") is not None


def _short(frame: str, line: bool = False) -> str:
    """`f (/x/site-packages/aiohttp/web_protocol.py:12)` -> `aiohttp/web_protocol.py:f`
    (or `aiohttp/web_protocol.py:12 f` with `line`)."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if line:
        return f"{path}:{match['line']} {match['func']}"
    return f"{path}:{match['func']}"


@dataclass(frozen=True)
class Summary:
    samples: int
    own: list[tuple[str, float]]
    devamb_total: list[tuple[str, float]]
    devamb_lines: list[tuple[str, float]]
    components: list[tuple[str, float]]


def _component(frame: str) -> str:
    """What a leaf frame belongs to: a devamb file, or a top-level package (aiohttp, asyncio)."""
    path = frame.split(":", 1)[0]
    if path.startswith("devamb/"):
        return path
    return path.split("/", 1)[0] if "/" in path else "other"


def summarize(folded: str, top: int = 15) -> Summary:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    components: Counter[str] = Counter()
    samples = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = stack.split(";")
        frames = [_short(f) for f in raw]
        samples += count
        own[frames[-1]] += count
        components[_component(frames[-1])] += count
        if frames[-1].startswith("devamb/"):
            lines[_short(raw[-1], line=True)] += count
        for frame in set(frames):
            if frame.startswith("devamb/") and not frame.startswith(_ENTRY):
                total[frame] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / samples) for name, n in counter.most_common(top)]

    if samples == 0:
        return Summary(0, [], [], [], [])
    return Summary(samples, shares(own), shares(total), shares(lines), shares(components))


def profile(subject: Subject, case: Case, url: str, seconds: int, outdir: Path) -> Profile:
    assert subject.pid is not None
    out = outdir / f"{subject.key}-{case.key}.folded"
    argv = ["py-spy", "record", "--pid", str(subject.pid), "--duration", str(seconds)]
    argv += ["--rate", "250", "--format", "raw", "--nonblocking", "-o", str(out)]
    spy = subprocess.Popen(
        pinned(argv, LOAD_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        run_wrk(url, Load(case.connections, case.threads, seconds), LOAD_CPU)
        spy.wait(timeout=seconds + 30)
    except (WrkError, subprocess.TimeoutExpired):
        pass
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    found = summarize(out.read_text() if out.exists() else "")
    return Profile(
        subject.key,
        case.key,
        found.samples,
        found.own,
        found.devamb_total,
        found.devamb_lines,
        found.components,
        str(out),
    )


def profile_all(
    subjects: Sequence[Subject], cases: Sequence[Case], seconds: int, outdir: Path
) -> list[Profile]:
    outdir.mkdir(parents=True, exist_ok=True)
    found = []
    for subject in subjects:
        for case in cases:
            url = subject.url(case.protocol, case.path)
            if url is not None and subject.pid is not None:
                found.append(profile(subject, case, url, seconds, outdir))
    return found


def markdown(profiles: Sequence[Profile]) -> str:
    parts = []
    for prof in profiles:
        lines = [f"**{prof.subject}, {prof.case}** ({prof.samples} samples, `{prof.folded}`)", ""]
        lines += ["| own time | where |", "| ---: | --- |"]
        lines += [f"| {share:.1%} | `{name}` |" for name, share in prof.components[:8]]
        lines += ["", "| own time | function |", "| ---: | --- |"]
        lines += [f"| {share:.1%} | `{name}` |" for name, share in prof.own]
        lines += ["", "| total time | devamb function |", "| ---: | --- |"]
        lines += [f"| {share:.1%} | `{name}` |" for name, share in prof.devamb_total]
        lines += ["", "| own time | devamb line |", "| ---: | --- |"]
        lines += [f"| {share:.1%} | `{name}` |" for name, share in prof.devamb_lines[:10]]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
