"""`devamb doctor` and `devamb completion`, run as the real command."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import devamb, free_port


def write_profile(folder: Path, *ports: int, extra_target: str = "") -> None:
    services = "".join(
        f"  s{i}:\n    listen: {port}\n    target: echo\n    targets:\n      echo: echo\n"
        + extra_target
        for i, port in enumerate(ports)
    )
    (folder / "devamb.yaml").write_text(f"version: 1\nservices:\n{services}")


def lines(out: str) -> dict[str, str]:
    """Each check's line by what it checks (`port 127.0.0.1:N (s0)` -> `ok    …: free`)."""
    return {line[6:].split(":", 1)[0] if not line[6:].startswith("port") else
            line[6:].split(" (", 1)[0]: line for line in out.splitlines()
            if not line.startswith(" ")}


async def test_doctor_all_ok_on_free_ports(tmp_path: Path) -> None:
    port = free_port()
    write_profile(tmp_path, port)
    rc, out, err = await devamb("doctor", cwd=tmp_path)
    assert rc == 0, out + err
    found = lines(out)
    assert found["python"].startswith("ok")
    assert found["profile"].startswith("ok")
    assert found["control socket"].startswith("ok") and "no engine running" in out
    assert found[f"port 127.0.0.1:{port}"].startswith("ok") and out.count("fail") == 0
    assert found["docker"].startswith("info")  # no docker targets: informational only


async def test_a_port_taken_by_another_process_fails_with_a_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_profile(tmp_path, port)
        rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    line = lines(out)[f"port 127.0.0.1:{port}"]
    assert line.startswith("fail") and "in use by another process" in line
    assert f"fix: stop it (`lsof -i :{port}`" in out


async def test_ports_held_by_this_projects_engine_are_ok(tmp_path: Path) -> None:
    port = free_port()
    write_profile(tmp_path, port)
    assert (await devamb("up", "--detach", cwd=tmp_path))[0] == 0
    try:
        rc, out, err = await devamb("doctor", cwd=tmp_path)
        assert rc == 0, out + err
        found = lines(out)
        assert "held by this project's engine" in found[f"port 127.0.0.1:{port}"]
        assert "answers on" in found["control socket"]
    finally:
        await devamb("down", cwd=tmp_path)


async def test_a_dead_engines_files_are_a_warning(tmp_path: Path) -> None:
    write_profile(tmp_path, free_port())
    (tmp_path / ".devamb").mkdir(mode=0o700)
    (tmp_path / ".devamb" / "engine.pid").write_text("999999999\n")
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 0
    assert lines(out)["control socket"].startswith("warn")
    assert "the next `devamb up` or `devamb down` cleans them up" in out


async def test_docker_unreachable_fails_only_when_the_profile_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_target = "      made: {docker: {container: web-dev, port: 8000}}\n"
    write_profile(tmp_path, free_port(), extra_target=docker_target)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    assert lines(out)["docker"].startswith("fail") and "fix: start Docker" in out


async def test_a_broken_profile_fails_naming_the_problem(tmp_path: Path) -> None:
    (tmp_path / "devamb.yaml").write_text("version: 1\nservices:\n  a: {listen: 0, zzz: 1}\n")
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 1
    assert "fail  profile" in out and "devamb.yaml:3:" in out and "zzz" in out


async def test_no_profile_is_a_warning(tmp_path: Path) -> None:
    rc, out, _ = await devamb("doctor", cwd=tmp_path)
    assert rc == 0 and "warn  profile: none at devamb.yaml" in out


async def test_completion_scripts_for_each_shell(tmp_path: Path) -> None:
    for shell, marker in (("bash", "complete -o nosort -F _devamb_completion devamb"),
                          ("zsh", "#compdef devamb"),
                          ("fish", "complete --no-files --command devamb")):
        rc, out, err = await devamb("completion", shell, cwd=tmp_path)
        assert rc == 0, err
        assert marker in out and "_DEVAMB_COMPLETE" in out
    rc, _, err = await devamb("completion", "tcsh", cwd=tmp_path)
    assert rc == 2 and "tcsh" in err
