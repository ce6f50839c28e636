"""An engine imports what its profile uses (issue 22: RSS): the Docker SDK only with docker
targets, protobuf only with gRPC, aiohttp's client only to replay or mirror (and never its server).
Checked on sys.modules in a fresh interpreter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from devamb.profile.shipped import shipped_source

PLAIN = """\
    services:
      web:
        listen: 0
        target: up
        targets:
          up: http://127.0.0.1:9
          echo: echo
          tls: https://example.invalid
      cache:
        listen: 0
        protocol: tcp
        target: echo
        targets:
          echo: echo
"""

RUN = """\
import asyncio, json, sys
from pathlib import Path
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine

async def main():
    engine = Engine(load_profile(Path(sys.argv[1])))
    await engine.start()
    await engine.stop()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def modules_of_engine(tmp_path: Path, profile: str) -> set[str]:
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(profile))
    done = subprocess.run([sys.executable, "-c", RUN, str(path)], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def under(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_a_plain_profile_loads_neither_docker_nor_protobuf(tmp_path: Path) -> None:
    modules = modules_of_engine(tmp_path, PLAIN)
    assert "devamb.engine.core" in modules  # the engine did run
    for package in ("docker", "requests", "google.protobuf", "devamb.targets.docker", "aiohttp"):
        assert not under(modules, package), package


def test_a_docker_target_loads_the_docker_sdk(tmp_path: Path) -> None:
    """The check above can fail: a profile with a docker target does load the SDK (the
    target starts without a Docker daemon: it is reported unreachable)."""
    profile = """\
        services:
          web:
            listen: 0
            target: up
            targets:
              up: http://127.0.0.1:9
              box: {docker: {container: devamb-none, port: 80}}
    """
    assert under(modules_of_engine(tmp_path, profile), "docker")


# What the demo profile (HTTP/1 services on echo and URL targets, a TCP echo) must not load:
# each is imported by the profiles, connections or control calls that use it.
NOT_FOR_THE_DEMO = (
    "docker", "requests", "aiohttp", "grpc", "google.protobuf", "asyncssh", "textual", "rich",
    "h2.connection", "hpack", "re2",
    "devamb.targets.docker", "devamb.targets.mock", "devamb.targets.shards",
    "devamb.targets.pool", "devamb.targets.split", "devamb.service.http2",
    "devamb.proxy.h2conn", "devamb.proxy.h2front", "devamb.grpc.catalog",
    "devamb.inspect.har", "devamb.inspect.diff", "devamb.service.replay_h2",
    # the SSH client (bastions), the WebSocket relay (on the first upgrade), the control
    # client and the CLI's other commands (not in the engine's process)
    "asyncssh", "devamb.tunnel.bastion", "devamb.tunnel.ssh", "devamb.tunnel.channel",
    "devamb.proxy.websocket", "devamb.proxy.websocket_record", "devamb.proxy.websocket_shape",
    "devamb.control.client", "devamb.cli.doctor", "devamb.cli.faults", "devamb.cli.inspect",
    "devamb.cli.export_cmd", "devamb.cli.mocks", "devamb.cli.top", "devamb.cli.schema_cmd",
    "devamb.cli.completion", "devamb.cli.init_template", "devamb.export",
    # the profile watcher uses watchfiles' native watcher, not its package (engine/watch.py)
    "anyio", "multiprocessing", "watchfiles.main", "watchfiles.run",
    # fault kinds (imported when a profile or a control call uses one), the typo hints
    "devamb.faults.abort", "devamb.faults.latency", "devamb.faults.reset", "devamb.faults.error",
    "devamb.grpc.answers", "h2", "difflib", "http.cookies",
    # hashlib and hmac set up OpenSSL's digest tables (0.7 MiB): the socket path of a deep
    # folder, gRPC schemas and replays import them; fingerprints use CPython's own SHA-256
    "hashlib", "_hashlib", "hmac", "secrets",
    # the parsers and runners of the keys the demo does not use: schemas (protoc, globs),
    # scenarios, bastions
    "devamb.grpc.profile", "devamb.grpc.protoc", "devamb.grpc.schema", "glob",
    "devamb.faults.scenario", "devamb.tunnel.spec",
    # a plain TCP relay: the protocol followers (postgres, redis) and TLS termination
    "devamb.wire.follower", "devamb.service.tcp_follow", "devamb.service.tcp_terminate",
    # yarl (with idna and propcache: ~0.9 MiB): a URL target's upstream URLs are made at its
    # first exchange, a request's query parsed when a routing key reads it
    "yarl", "idna", "propcache",
    # NFKC folding of secrets that are not ASCII (the demo's is): unicodedata's library
    "unicodedata",
    # http.HTTPStatus (an enum of 62 members with descriptions): the phrases are a table
    "http",
    # the control API's route table (its Router at the first request) and the inspection
    # desk (at the first call that reads records or their events)
    "devamb.control.routes", "devamb.engine.desks.inspection",
)


def demo_profile() -> str:
    """The shipped demo profile with its listeners on port 0 (tests run side by side)."""
    found = shipped_source("demo")
    assert found is not None
    return re.sub(r"(?m)^(\s+listen:) \d+", r"\1 0", found.read_text())


def test_the_demo_profile_loads_only_what_it_uses(tmp_path: Path) -> None:
    """Issue 22 (engine RSS after start): checked on sys.modules, not on a memory figure."""
    modules = modules_of_engine(tmp_path, demo_profile())
    assert "devamb.targets.url" in modules and "devamb.service.tcp" in modules  # it did run
    assert [p for p in NOT_FOR_THE_DEMO if under(modules, p)] == []


def test_http2_and_mocks_load_their_code_when_a_profile_has_them(tmp_path: Path) -> None:
    """The check above can fail: the same modules are loaded by a profile that uses them."""
    profile = """\
        services:
          calls:
            listen: 0
            protocol: http2
            target: up
            targets:
              up: http://127.0.0.1:9
          web:
            listen: 0
            target: fake
            targets:
              fake: {mock: {routes: [{match: {path: /}, respond: {status: 204}}]}}
    """
    modules = modules_of_engine(tmp_path, profile)
    for package in ("h2.connection", "devamb.service.http2", "devamb.targets.mock"):
        assert under(modules, package), package


def test_a_fault_loads_its_kind(tmp_path: Path) -> None:
    """The check above can fail: a profile with a fault imports that kind's module."""
    profile = """\
        services:
          web:
            listen: 0
            target: echo
            targets:
              echo: echo
            faults:
              slow: {kind: latency, delay: 10ms}
    """
    modules = modules_of_engine(tmp_path, profile)
    assert under(modules, "devamb.faults.latency") and not under(modules, "devamb.faults.abort")


def test_a_bastion_loads_the_ssh_client(tmp_path: Path) -> None:
    """The check above can fail: a profile with a bastion builds its (unconnected) client."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    profile = f"""\
        bastions:
          jump: {{host: 127.0.0.1, port: 9, known_hosts: {known_hosts}}}
        services:
          web:
            listen: 0
            target: remote
            targets:
              remote: {{url: 'http://10.0.0.1:80', via: jump}}
    """
    assert under(modules_of_engine(tmp_path, profile), "devamb.tunnel.bastion")


def test_devamb_up_on_the_demo_profile_loads_only_what_it_uses(tmp_path: Path) -> None:
    """The same through the command line (`devamb up --headless`, the process a user runs):
    its imports as `-X importtime` lists them, read once the engine says it is ready."""
    path = tmp_path / "demo.yaml"
    path.write_text(demo_profile())
    engine = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "devamb", "up", "--headless", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env=os.environ.copy(),
    )
    lines: list[str] = []
    watchdog = threading.Timer(120, engine.kill)  # an engine that never gets ready ends the read
    watchdog.start()
    try:
        assert engine.stdout is not None
        for line in engine.stdout:
            lines.append(line)
            if "engine ready" in line:
                break
    finally:
        watchdog.cancel()
        engine.terminate()
        engine.wait(60)
    assert any("engine ready" in line for line in lines), "".join(lines[-20:])
    # `up` execs the engine's own process (python -m devamb.engine): its imports are listed
    # after the second header
    headers = [i for i, line in enumerate(lines) if line.startswith("import time: self")]
    assert len(headers) == 2, "".join(lines[-20:])
    modules = {line.split("|")[2].strip() for line in lines[headers[1]:]
               if line.startswith("import time:") and line.count("|") == 2}
    assert "devamb.engine.core" in modules and "devamb.targets.url" in modules
    assert [p for p in NOT_FOR_THE_DEMO if under(modules, p)] == []
    # nor the command line's code (issue 22: 1.5 MiB)
    assert [p for p in ("click", "devamb.cli") if under(modules, p)] == []


def test_service_fingerprints_stay_sha256() -> None:
    """The fingerprints kept in .devamb/state.json across restarts are still hashlib's SHA-256
    (assembly computes them without importing hashlib)."""
    import hashlib

    from devamb.engine.assembly import _fingerprint

    value = {"listen": 9000, "target": "echo", "targets": {"echo": "echo"}}
    text = json.dumps(value, sort_keys=True, default=str).encode()
    assert _fingerprint(value) == hashlib.sha256(text).hexdigest()[:16]
