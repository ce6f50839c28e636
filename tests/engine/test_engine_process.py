"""`devamb up --headless` execs the engine's own process (`python -m devamb.engine`): the same
pid, without the command line's code (issue 22: RSS), with the options `up` was given."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devamb.engine.__main__ import main
from devamb.proxy.listen import bound_socket

PROFILE = """\
services:
  web:
    listen: 0
    target: echo
    targets:
      echo: echo
  cache:
    listen: 0
    protocol: tcp
    target: echo
    targets:
      echo: echo
"""


def test_the_entry_point_parses_what_up_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2 and "usage:" in capsys.readouterr().err
    assert main([str(tmp_path / "a.yaml"), "--grace"]) == 2  # a value is missing
    assert main([str(tmp_path / "a.yaml"), "--what"]) == 2
    broken = tmp_path / "devamb.yaml"
    broken.write_text("services:\n  web:\n    listen: 0\n")
    assert main([str(broken), "--reset", "--grace", "2.5"]) == 1
    assert f"{broken.name}:2:3: services.web: missing required key" in capsys.readouterr().err


def test_up_headless_becomes_the_engine_process(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(PROFILE)
    log = tmp_path / "engine.out"
    with log.open("wb") as out:
        engine = subprocess.Popen(
            [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "devamb", "up",
             "--headless", "--reset", "--grace", "2.5s", str(path)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while "engine ready" not in log.read_text() and engine.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert engine.poll() is None, log.read_text()
        ready = re.search(r"engine ready \(pid (\d+)", log.read_text())
        assert ready is not None and int(ready.group(1)) == engine.pid  # exec: the same pid
        argv = Path(f"/proc/{engine.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        assert argv[1:] == ["-W", "ignore::DeprecationWarning", "-m", "devamb.engine", str(path),
                            "--reset", "--grace", "2.5"]
        # no resolver threads at start: the listeners are bound without the loop's resolver
        # (uvloop's four libuv threads, asyncio's executor); at most the profile watcher's two
        # (watchfiles' notifier and the thread waiting on it) besides the loop's (issue 22)
        assert len(os.listdir(f"/proc/{engine.pid}/task")) <= 3
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(60)
    assert engine.returncode == 0, log.read_text()


def test_listeners_on_addresses_are_bound_without_the_resolver() -> None:
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        try:
            sock = bound_socket(host, 0)
        except OSError:  # a machine without IPv6
            assert family == socket.AF_INET6
            continue
        assert sock is not None and sock.family == family and sock.getsockname()[1] > 0
        if family == socket.AF_INET6:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        sock.close()
    assert bound_socket("localhost", 0) is None  # a name: the loop resolves it
