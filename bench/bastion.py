"""SSH bastion benchmark: devamb's own tunnel (`via:`, asyncssh direct-tcpip channels) against
the same upstream reached through OpenSSH's `ssh -N -L` forward, side by side in one run.

    python bench/bastion.py [--seconds 5] [--rounds 2] [--cipher aes128-gcm@openssh.com]

Both paths go through the same devamb engine (HTTP and TCP services), so the figures compare the
tunnels alone: `tunnel` is a target with `via: bench` (devamb speaks SSH itself), `ssh -L` is a
plain target on the local port of `ssh -N -L` (OpenSSH's client does the SSH). Both use the same
sshd on 127.0.0.1 and the same cipher (forced on both sides: `Ciphers` in the engine's
~/.ssh/config, which devamb honours, and `-o Ciphers=` for ssh). Cases: HTTP 1 KiB at c1 and c32
(wrk), TCP bulk (one connection reading 256 MiB). Needs wrk, sshd, ssh, curl.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.sshd import Sshd  # noqa: E402 - the same sshd recipe as the tests

BULK = 256 * 1024 * 1024
BULK_SERVER = """
import socket, sys, threading
chunk = b"x" * 65536
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(64)
def serve(conn):
    try:
        while True:
            conn.sendall(chunk)
    except OSError:
        pass
    finally:
        conn.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wrk(port: int, connections: int, seconds: int) -> tuple[float, float]:
    """(req/s, p50 ms) of 1 KiB GETs."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/1k"], capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rate, float(p50.group(1)) * scale


def bulk(port: int) -> float:
    """MiB/s reading BULK bytes through one TCP connection."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started, got = time.perf_counter(), 0
        while got < BULK:
            data = conn.recv(1 << 20)
            if not data:
                raise RuntimeError("the stream ended early")
            got += len(data)
        return got / (1 << 20) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cipher", default="aes128-gcm@openssh.com")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the engine during a c32 run "
                        "through the tunnel (collapsed stacks), then exit")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="devamb-bastion-bench-"))
    children = Children()
    sshd = Sshd(base / "sshd").start()
    try:
        return run(args, base, sshd, children)
    finally:
        children.stop()
        sshd.stop()


def run(args: argparse.Namespace, base: Path, sshd: Sshd, children: Children) -> int:
    up, bulk_port = free_port(), free_port()
    children.spawn([sys.executable, str(REPO / "bench" / "upstream_aiohttp.py"), str(up)])
    children.spawn([sys.executable, "-c", BULK_SERVER, str(bulk_port)])
    wait_port(up)
    wait_port(bulk_port)
    known = base / "known_hosts"
    known.write_text(sshd.known_hosts_line() + "\n")
    fwd_http, fwd_bulk = free_port(), free_port()
    children.spawn([
        "ssh", "-N", "-o", f"Ciphers={args.cipher}", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known}", "-o", "ExitOnForwardFailure=yes",
        "-o", "BatchMode=yes", "-i", str(sshd.client_key), "-p", str(sshd.port),
        "-L", f"{fwd_http}:127.0.0.1:{up}", "-L", f"{fwd_bulk}:127.0.0.1:{bulk_port}",
        f"{sshd.user}@127.0.0.1",
    ])
    wait_port(fwd_http)
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(f"Host 127.0.0.1\n  Ciphers {args.cipher}\n")
    ports = {name: free_port() for name in ("tunnel", "sshl", "tunnel_tcp", "sshl_tcp")}
    profile = base / "devamb.yaml"
    profile.write_text(
        "version: 1\nname: bastion-bench\nbastions:\n"
        f"  bench: {{host: 127.0.0.1, port: {sshd.port}, user: {sshd.user}, "
        f"identity_file: {sshd.client_key}, known_hosts: {known}}}\nservices:\n"
        f"  tunnel: {{listen: {ports['tunnel']}, target: t, targets: "
        f"{{t: {{url: 'http://127.0.0.1:{up}', via: bench}}}}}}\n"
        f"  sshl: {{listen: {ports['sshl']}, target: t, targets: {{t: 'http://127.0.0.1:{fwd_http}'}}}}\n"
        f"  tunnel_tcp: {{listen: {ports['tunnel_tcp']}, protocol: tcp, target: t, targets: "
        f"{{t: {{url: 'tcp://127.0.0.1:{bulk_port}', via: bench}}}}}}\n"
        f"  sshl_tcp: {{listen: {ports['sshl_tcp']}, protocol: tcp, target: t, targets: "
        f"{{t: 'tcp://127.0.0.1:{fwd_bulk}'}}}}\n"
    )
    env = {**os.environ, "HOME": str(home), "DEVAMB_LOOP": "uvloop",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with open(base / "engine.log", "wb") as log:
        engine = children.spawn([sys.executable, "-m", "devamb", "up", "--headless", str(profile)],
                       cwd=base, env=env, stdout=subprocess.DEVNULL, stderr=log)
    for port in ports.values():
        wait_port(port)
    for port in (ports["tunnel"], ports["sshl"]):  # warm: the tunnel opens on first use
        wrk(port, 4, 1)

    if args.py_spy:
        spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-o", args.py_spy,
                                "-d", str(args.seconds), "-p", str(engine.pid)])
        wrk(ports["tunnel"], 32, args.seconds)
        spy.wait()
        return 0
    results: dict[str, dict[str, list[float]]] = {}
    for round_no in range(args.rounds):
        order = ["tunnel", "sshl"] if round_no % 2 == 0 else ["sshl", "tunnel"]
        for name in order:
            row = results.setdefault(name, {})
            rate1, p50 = wrk(ports[name], 1, args.seconds)
            rate32, _ = wrk(ports[name], 32, args.seconds)
            row.setdefault("c1 req/s", []).append(rate1)
            row.setdefault("c1 p50 ms", []).append(p50)
            row.setdefault("c32 req/s", []).append(rate32)
            row.setdefault("bulk MiB/s", []).append(bulk(ports[f"{name}_tcp"]))

    status = json.loads(subprocess.run(
        ["curl", "-s", "--unix-socket", str(base / ".devamb" / "engine.sock"),
         "http://devamb/v1/status"], capture_output=True, text=True).stdout or "{}")
    bastion = next(iter(status.get("bastions") or [{}]))
    med = {n: {k: statistics.median(v) for k, v in row.items()} for n, row in results.items()}
    print(f"cipher: {args.cipher} (devamb negotiated {bastion.get('cipher')}, "
          f"one SSH connection, {bastion.get('channels_total')} channels opened)")
    print(f"{args.rounds} rounds x {args.seconds}s per wrk run; medians\n")
    print("| path | HTTP 1 KiB c1 req/s | c1 p50 ms | HTTP 1 KiB c32 req/s | TCP bulk MiB/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = {"tunnel": "devamb tunnel (`via:`)", "sshl": "devamb -> `ssh -N -L`"}
    for name in ("tunnel", "sshl"):
        m = med[name]
        print(f"| {labels[name]} | {m['c1 req/s']:.0f} | {m['c1 p50 ms']:.3f} | "
              f"{m['c32 req/s']:.0f} | {m['bulk MiB/s']:.0f} |")
    t, s = med["tunnel"], med["sshl"]
    ratio = t["c32 req/s"] / s["c32 req/s"]
    added = t["c1 p50 ms"] - s["c1 p50 ms"]
    print(f"\nc32 ratio tunnel / ssh -L: {ratio:.2f}x (goal >= 0.8x: "
          f"{'pass' if ratio >= 0.8 else 'FAIL'})")
    print(f"c1 added p50 vs ssh -L: {added:+.3f} ms (goal <= 0.2 ms: "
          f"{'pass' if added <= 0.2 else 'FAIL'})")
    print(f"TCP bulk ratio: {t['bulk MiB/s'] / s['bulk MiB/s']:.2f}x")
    return 0 if ratio >= 0.8 and added <= 0.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
