"""Two engines side by side: grpcio unary c1 through each, in alternated short runs.

    git archive REV devamb | tar -x -C /tmp/other      # the engine to compare with
    python bench/grpc_side.py /tmp/other [--seconds 1.5] [--pairs 8] [--one-cpu]

Both engines (this tree's and the other tree's devamb, each a `grpc` service under uvloop) are
up at once on the proxy CPU (with `--one-cpu`, on the load CPU with the client and the
grpcio upstream), so that a shared machine's load drifts over both alike; each pair runs
direct, then the two engines in alternating order. Prints the median p50s, the added p50s,
each engine's CPU per call and in how many pairs this tree's p50 was the lower. The engine
started first ("other") came out ahead in most runs here whichever it was: run it from both
trees (swapped) and read the two together.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from http2 import grpc_run, profile, start_upstream
from peers import LOAD_CPU, PROXY_CPU, REPO
from procs import Children, cpu_seconds, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="a tree with the devamb package to compare")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--one-cpu", action="store_true")
    args = parser.parse_args()
    trees = {"other": str(args.other.resolve()), "this": str(REPO)}
    p50: dict[str, list[float]] = {"direct": [], "other": [], "this": []}
    cpu: dict[str, list[float]] = {"other": [], "this": []}
    root = Path(tempfile.mkdtemp(prefix="devamb-grpc-side-"))
    with Children(root) as children:
        upstream = start_upstream(children, "grpc")
        ports, pids = {}, {}
        for name, tree in trees.items():
            port, folder = free_port(), root / name
            folder.mkdir()
            (folder / "devamb.yaml").write_text(profile(free_port(), port, free_port(), upstream))
            engine = children.spawn(
                f"devamb-{name}", [sys.executable, "-m", "devamb", "up", "--headless",
                                   str(folder / "devamb.yaml")],
                cpu=LOAD_CPU if args.one_cpu else PROXY_CPU,
                env={"DEVAMB_LOOP": "uvloop", "PYTHONPATH": tree}, cwd=folder)
            children.wait_listening(engine, [port])
            ports[name], pids[name] = port, engine.pid
        for pair in range(args.pairs):
            p50["direct"].append(grpc_run(upstream, 1, args.seconds)["p50_ms"])
            for name in ("other", "this") if pair % 2 == 0 else ("this", "other"):
                before = cpu_seconds(pids[name]) or 0.0
                result = grpc_run(ports[name], 1, args.seconds)
                after = cpu_seconds(pids[name]) or before
                p50[name].append(result["p50_ms"])
                cpu[name].append((after - before) / max(1, result["requests"]) * 1e6)
    direct = statistics.median(p50["direct"])
    print(f"{'all on one CPU' if args.one_cpu else 'engines on the proxy CPU'}: direct p50 "
          f"{direct:.3f} ms (median of {args.pairs})")
    for name in ("other", "this"):
        median = statistics.median(p50[name])
        print(f"{name} ({trees[name]}): p50 {median:.3f} ms, added {median - direct:.3f} ms, "
              f"CPU per call {statistics.median(cpu[name]):.0f} us (medians)")
    lower = sum(this < other for this, other in zip(p50["this"], p50["other"], strict=True))
    print(f"this tree's p50 lower in {lower} of {args.pairs} pairs (other/this: "
          + ", ".join(f"{o:.2f}/{t:.2f}" for o, t in zip(p50["other"], p50["this"], strict=True))
          + ")")


if __name__ == "__main__":
    main()
