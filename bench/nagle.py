"""The upstream-Nagle case: a keep-alive upstream that writes head and body in two sends.

    python bench/nagle.py [--seconds S] [--loop uvloop|asyncio]

Python's `http.server` with HTTP/1.1 (and several dev servers) sends a response's head and
body separately without TCP_NODELAY: the body waits for the ACK of the head, which a client
that delays its ACKs (Linux does, by >= 40 ms, on an interactive connection) sends late. wrk
at c1 measures p50 direct and through devamb (and nginx, when installed) against that upstream
and against the same upstream with TCP_NODELAY. Goal (issue 22): devamb's added p50 with Nagle
on is within 1 ms of its added p50 with TCP_NODELAY. Exit code 1 when missed.

Direct, wrk itself is the client that delays its ACK: the direct Nagle figure shows the stall
any keep-alive client without TCP_QUICKACK sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from loadgen import Load, run_wrk
from peers import BENCH_DIR, LOAD_CPU, PROXY_CPU, REPO, Unavailable, Upstream, start_nginx_proxy
from procs import HOST, Children, StartError, free_port

GOAL_MS = 1.0


def start_upstream(children: Children, nodelay: bool) -> Upstream:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "upstream_twosends.py"), str(port)]
    argv += ["--nodelay"] if nodelay else []
    child = children.spawn(f"upstream-{'nodelay' if nodelay else 'nagle'}", argv, cpu=LOAD_CPU)
    children.wait_listening(child, [port])
    return Upstream("http.server", port, child.pid)


def start_devamb(children: Children, base: Path, ups: dict[str, Upstream], loop: str) -> dict:
    ports = {name: free_port() for name in ups}
    services = "".join(
        f"  {name}:\n    listen: {ports[name]}\n    targets:\n"
        f"      up: http://{HOST}:{up.port}\n" for name, up in ups.items())
    profile = base / "devamb.yaml"
    profile.write_text(f"version: 1\nname: nagle\nservices:\n{services}")
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "devamb", "up", "--headless", str(profile)]
    child = children.spawn(f"devamb-{loop}", argv, cpu=PROXY_CPU, cwd=base,
                           env={"DEVAMB_LOOP": loop, "PYTHONPATH": pythonpath})
    children.wait_listening(child, list(ports.values()))
    return ports


def p50(port: int, seconds: int) -> float:
    return run_wrk(f"http://{HOST}:{port}/", Load(1, 1, seconds), LOAD_CPU).p50_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run (default 3)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed")
        return 1
    with tempfile.TemporaryDirectory(prefix="devamb-nagle-") as tmp, Children(Path(tmp)) as kids:
        ups = {"nagle": start_upstream(kids, False), "nodelay": start_upstream(kids, True)}
        rows: dict[str, dict[str, float]] = {"direct": {}, "devamb": {}}
        try:
            devamb = start_devamb(kids, Path(tmp), ups, args.loop)
        except StartError as exc:
            print(f"devamb did not start: {exc}")
            return 1
        nginx: dict[str, int] = {}
        for name, up in ups.items():
            try:
                nginx[name] = start_nginx_proxy(kids, Path(tmp) / name, up).ports["http"]
            except (Unavailable, StartError) as exc:
                print(f"nginx skipped: {exc}")
                break
        for name, up in ups.items():
            rows["direct"][name] = p50(up.port, args.seconds)
            rows["devamb"][name] = p50(devamb[name], args.seconds)
            if name in nginx:
                rows.setdefault("nginx", {})[name] = p50(nginx[name], args.seconds)
    print(textwrap.dedent(f"""\
        HTTP 1 KiB, c1, upstream http.server sending head and body apart (devamb: {args.loop})

        | path | p50 ms, Nagle on | p50 ms, TCP_NODELAY | added p50 ms, Nagle | added, NODELAY |
        | --- | ---: | ---: | ---: | ---: |"""))
    direct = rows["direct"]
    for path, row in rows.items():
        added = ("", "") if path == "direct" else (
            f"{row['nagle'] - direct['nodelay']:.3f}", f"{row['nodelay'] - direct['nodelay']:.3f}")
        print(f"| {path} | {row['nagle']:.3f} | {row['nodelay']:.3f} | {added[0]} | {added[1]} |")
    gap = rows["devamb"]["nagle"] - rows["devamb"]["nodelay"]
    ok = gap <= GOAL_MS
    print(f"\nGoal: devamb with Nagle on within {GOAL_MS:g} ms of TCP_NODELAY: "
          f"{gap:+.3f} ms, {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
