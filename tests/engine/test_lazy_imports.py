"""An engine imports what its profile uses (issue 22: RSS): the Docker SDK only with docker
targets, protobuf only with gRPC, aiohttp's client only to replay or mirror (and never its server).
Checked on sys.modules in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
