"""Hostile and broken profiles: `devamb validate` and a running engine's reload must answer
with a positioned error, bounded in time and memory, while every listener keeps serving.

Bug 5 (alias bombs, huge files, reload parsed on the event loop), bug 9 (not UTF-8), and the
weak spots "localhost:P beside 127.0.0.1:P" and "validate reports problems one batch at a time".
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.hardening.engine_process import EngineProcess
from tests.profile.bombs import SERVICE, alias_bomb
from tests.upstreams import HttpUpstream

MEMORY_CAP = 1536 * 2**20  # address space for a `devamb validate`: a bomb must not need more


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate(folder: Path, name: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`devamb validate ./NAME` in `folder`, with a memory cap; a hang fails at `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "devamb", "validate", f"./{name}"],
        cwd=folder, capture_output=True, text=True, timeout=timeout, preexec_fn=_cap_memory,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )


def only_problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


# -- bug 5: alias bombs and size ----------------------------------------------------------------


def test_validate_refuses_a_billion_laughs_at_the_alias(tmp_path: Path) -> None:
    text = alias_bomb(9) + SERVICE  # ~600 bytes; 9**9 strings once expanded
    assert len(text) < 1000
    (tmp_path / "bomb.yaml").write_text(text)
    [line] = only_problems(validate(tmp_path, "bomb.yaml"))
    assert line.startswith("bomb.yaml:6:")  # the alias at which the expansion crossed the cap
    assert "aliases expand to more than" in line and "alias bomb" in line


def test_validate_refuses_a_file_over_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(SERVICE + ("# padding" + " " * 90 + "\n") * 100_000)
    [line] = only_problems(validate(tmp_path, "big.yaml"))
    assert line.startswith("big.yaml:1:1: the file is 9.5 MiB; devamb reads YAML files of at most")


def test_validate_refuses_a_flat_file_with_too_many_values(tmp_path: Path) -> None:
    (tmp_path / "flat.yaml").write_text(SERVICE + "x: [" + "1," * 1_000_000 + "1]\n")
    [line] = only_problems(validate(tmp_path, "flat.yaml"))
    assert line.startswith("flat.yaml:5:") and "YAML nodes (keys and values) in one file" in line


async def test_a_bomb_in_a_running_profile_stalls_no_listener(tmp_path: Path) -> None:
    """The reload parses off the event loop: requests are answered between the moment the
    engine sees the change and the moment it rejects it (the bomb, with its position), and
    the old configuration keeps serving."""
    upstream = await HttpUpstream("up").start()
    good = f"services:\n  api:\n    listen: 0\n    targets: {{up: \"{upstream.url}\"}}\n"
    engine = await EngineProcess(tmp_path, good).start()
    try:
        host, port = await engine.address("api")
        url = f"http://{host}:{port}/x"
        timeout = aiohttp.ClientTimeout(total=3)  # the old engine stalled for many seconds
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                assert response.status == 200
            with open(engine.profile, "a") as f:  # within the node cap, but work to parse
                f.write("bulk: [" + "1, " * 200_000 + "1]\n" + alias_bomb(5, width=12))
            during = 0  # answers while the reload was under way
            deadline = time.monotonic() + 60
            while "profile change rejected" not in (log := engine.log()):
                assert time.monotonic() < deadline, log
                async with session.get(url) as response:
                    assert response.status == 200
                if "changed: devamb.yaml" in log and "profile change rejected" not in engine.log():
                    during += 1
                await asyncio.sleep(0.01)
            async with session.get(url) as response:  # the old configuration still serves
                assert response.status == 200
        log = engine.log()
        assert during > 0, log
        assert re.search(r"devamb\.yaml:\d+:\d+: a\d.*: aliases expand to more than", log), log
        assert "Traceback" not in log
    finally:
        await engine.close()
        await upstream.stop()


# -- bug 9: not UTF-8 ---------------------------------------------------------------------------


def test_validate_reports_bytes_that_are_not_utf8_at_their_position(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_bytes(b"version: 1\nname: \xff\xfe\n")
    assert only_problems(validate(tmp_path, "x.yaml")) == ["x.yaml:2:7: not UTF-8"]


def test_mock_and_env_files_that_are_not_utf8_are_positioned_too(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_bytes(b"routes:\n  - path: /caf\xe9\n")
    (tmp_path / "p.yaml").write_text(
        "services:\n  api:\n    listen: 0\n    targets: {m: {mock: m.yaml}}\n"
    )
    assert only_problems(validate(tmp_path, "p.yaml")) == ["m.yaml:2:15: not UTF-8"]
    (tmp_path / ".env").write_bytes(b"TOKEN=s\xe9cret\n")
    assert only_problems(validate(tmp_path, "p.yaml")) == [".env:1:8: not UTF-8"]


# -- weak spots: listener clashes, all problems at once ----------------------------------------


def test_listeners_that_would_share_a_socket_are_refused_at_validation(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "services:\n"
        "  a: {listen: 9001, targets: {x: echo}}\n"
        "  b: {listen: 'localhost:9001', targets: {x: echo}}\n"
        "  c: {listen: '0.0.0.0:9002', targets: {x: echo}}\n"
        "  d: {listen: '127.0.0.1:9002', targets: {x: echo}}\n"
    )
    assert only_problems(validate(tmp_path, "p.yaml")) == [
        "p.yaml:3:15: services.b.listen: localhost:9001 overlaps 127.0.0.1:9001, the listener "
        "of service 'a' (both would bind 127.0.0.1:9001)",
        "p.yaml:5:15: services.d.listen: 127.0.0.1:9002 overlaps 0.0.0.0:9002, the listener "
        "of service 'c' (both would bind 127.0.0.1:9002)",
    ]


def test_validate_reports_a_bad_target_with_the_other_problems(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "services:\n  api:\n    targets: {x: 'ftp://nowhere/'}\n"
    )
    assert only_problems(validate(tmp_path, "p.yaml")) == [
        "p.yaml:2:3: services.api: missing required key 'listen'",
        "p.yaml:3:18: services.api.targets.x: 'ftp://nowhere/' is not a URL a http service "
        "can use: expected http:// or https://",
    ]

