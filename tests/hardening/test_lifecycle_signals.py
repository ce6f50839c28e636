"""Lifecycle and signals, attacked from outside: a stopped (SIGSTOP) engine, a terminal closed
under `devamb up`, `up` without a terminal, `down` while exchanges are in flight, a shared
socket folder someone else made, commands run where no engine is. Real engine processes, the
real `devamb` command; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devamb.cli import launcher
from devamb.control.client import ControlClient
from devamb.control.server import ControlServer, SocketInUse
from devamb.control.workdir import UnsafeSocketDir, Workdir, private_dir
from tests.conftest import free_port
from tests.tmux import Terminal
from tests.ui.fake_control import FakeControl
from tests.upstreams import HttpUpstream

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
WAIT = 30.0
PYTHONPATH = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # the tree under test


async def devamb(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devamb", *args, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


async def gone(pid: int, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


def accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def write_profile(folder: Path, target: str = "echo", timeout: str = "") -> int:
    port = free_port()
    lines = ["version: 1", "name: lifecycle", "services:", "  api:", f"    listen: {port}",
             f'    targets: {{a: "{target}"}}']
    if timeout:
        lines.append(f"    timeout: {timeout}")
    (folder / "devamb.yaml").write_text("\n".join(lines) + "\n")
    return port


@pytest.fixture
async def project(tmp_path: Path) -> AsyncIterator[Path]:
    """A folder with a profile; whatever engine a test left there is killed afterwards."""
    yield tmp_path
    pid_file = Workdir.beside(tmp_path / "devamb.yaml").pid
    pid = int(pid_file.read_text() or 0) if pid_file.exists() else 0
    if pid and alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


# -- bug 2: `down` must never orphan a live engine ----------------------------------------------


async def test_down_stops_an_engine_that_does_not_answer(project: Path) -> None:
    port = write_profile(project)
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    workdir = Workdir.beside(project / "devamb.yaml")
    pid = int(workdir.pid.read_text())
    os.kill(pid, signal.SIGSTOP)  # alive, holding its port and socket, answering nothing

    rc, _, err = await devamb("status", cwd=project)
    assert rc == 3
    assert f"engine pid {pid} is alive but not answering" in err, err
    assert "devamb down" in err
    assert workdir.socket.exists() and workdir.pid.exists()  # nobody removed its files

    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 1 and f"engine pid {pid} is alive but not answering" in err, err
    assert workdir.socket.exists() and workdir.pid.exists()

    rc, out, err = await devamb("down", "--grace", "1s", cwd=project)
    assert rc == 0, err
    assert f"engine pid {pid} is alive but not answering" in err
    assert f"engine {pid}" in out
    assert await gone(pid), "down left the engine running"
    assert not workdir.socket.exists() and not workdir.pid.exists()
    assert not accepts(port)
    rc, _, err = await devamb("up", "--detach", cwd=project)  # and the user can start again
    assert rc == 0, err
    assert (await devamb("down", cwd=project))[0] == 0


async def test_down_kills_a_stuck_engine_without_waiting_out_the_grace(project: Path) -> None:
    write_profile(project)
    workdir = Workdir.beside(project / "devamb.yaml")
    workdir.ensure()
    # stands in for an engine whose event loop is stuck: it ignores SIGTERM and never answers
    stuck = subprocess.Popen([
        sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
        "devamb-stuck-engine",
    ])  # fmt: skip
    workdir.pid.write_text(str(stuck.pid))
    try:
        started = time.monotonic()
        rc, out, err = await devamb("down", "--grace", "60s", cwd=project)
        assert rc == 0, err
        assert f"engine pid {stuck.pid} is alive but not answering" in err, err
        assert out.strip() == f"killed engine {stuck.pid}"
        assert time.monotonic() - started < 45  # silent for 5 s: not the 65 s of the grace
        assert stuck.wait(10) == -signal.SIGKILL
        assert not workdir.pid.exists()
    finally:
        stuck.kill()
        stuck.wait()


# -- bug 3: an engine started by `up` ends with it, however `up` ends ---------------------------


async def wait_for(check, what: str, terminal: Terminal | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    screen = terminal.screen() if terminal else ""
    pytest.fail(f"timed out waiting for {what}\n{screen}")


@needs_tmux
@pytest.mark.parametrize(
    "how",
    ["SIGHUP (terminal closed)", "SIGTERM", "SIGINT", "SIGKILL"],
    ids=["hup", "term", "int", "kill"],
)
async def test_engine_started_by_up_ends_with_it(
    project: Path, terminal: Terminal, how: str
) -> None:
    port = write_profile(project)
    workdir = Workdir.beside(project / "devamb.yaml")
    terminal.start(f"{sys.executable} -m devamb up", project, PYTHONPATH)
    await wait_for(lambda: ":" + str(port) in terminal.screen(), "the dashboard", terminal)
    engine = int(workdir.pid.read_text())
    up = terminal.pane_pid()
    assert engine != up and accepts(port)
    if how.startswith("SIGHUP"):
        terminal.kill()  # closing the terminal: the shell-less pane gets SIGHUP
    else:
        os.kill(up, getattr(signal, how))
    assert await gone(engine), f"the engine outlived devamb up ({how})"
    assert not accepts(port)
    assert not workdir.socket.exists() and not workdir.pid.exists()


@needs_tmux
async def test_up_says_it_attaches_to_a_running_engine(project: Path, terminal: Terminal) -> None:
    write_profile(project)
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    terminal.start(f"{sys.executable} -m devamb up", project, PYTHONPATH)
    await wait_for(lambda: "already running" in terminal.screen(), "the attach notice", terminal)
    assert "quitting leaves it running" in terminal.screen()
    assert (await devamb("down", cwd=project))[0] == 0


async def test_up_without_a_terminal_runs_headless(project: Path) -> None:
    port = write_profile(project)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devamb", "up", cwd=project, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for(lambda: accepts(port), "the listener")
        rc, _, err = await devamb("status", cwd=project)
        assert rc == 0, err
        assert int(Workdir.beside(project / "devamb.yaml").pid.read_text()) == proc.pid
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(proc.communicate(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0
    assert "no terminal" in err_bytes.decode() and "--detach" in err_bytes.decode()
    assert not accepts(port)


# -- drain: at least the longest service timeout, then say what was cut --------------------------


async def test_down_drains_for_the_longest_timeout_then_says_what_it_cut(
    project: Path, upstream: HttpUpstream
) -> None:
    port = write_profile(project, upstream.url, timeout="20s")
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as client:
        # 4.5 s: longer than the old fixed 3 s, well inside the service's 20 s timeout
        slow = asyncio.ensure_future(client.get(f"{url}/slow/4.5"))
        await wait_for(lambda: upstream.app["slow_started"] == 1, "the request upstream")
        rc, _, err = await devamb("down", cwd=project)
        response = await asyncio.wait_for(slow, WAIT)
        assert response.status == 200 and await response.text() == "finally"
    assert rc == 0, err
    assert "waiting up to 20s for 1 exchange (api 1)" in err, err
    assert "cut" not in err

    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    async with aiohttp.ClientSession() as client:
        slow = asyncio.ensure_future(client.get(f"{url}/slow/10"))
        await wait_for(lambda: upstream.app["slow_started"] == 2, "the request upstream")
        rc, _, err = await devamb("down", "--grace", "1s", cwd=project)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(slow, WAIT)
    assert rc == 0, err
    assert "cut 1 exchange (api 1) still in flight after 1s" in err, err


# -- two `up` at the same instant: one engine (the workdir's lock) -------------------------------


async def test_two_ups_started_at_once_run_one_engine(project: Path) -> None:
    port = write_profile(project)
    workdir = Workdir.beside(project / "devamb.yaml")
    results = await asyncio.gather(*(devamb("up", "--detach", cwd=project) for _ in range(2)))
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], results  # as when run one after the other
    [(_, out, _)] = [r for r in results if r[0] == 0]
    [(_, _, err)] = [r for r in results if r[0] == 1]
    pid = int(workdir.pid.read_text())
    assert f"engine pid {pid};" in out, out
    assert f"an engine is already running for devamb.yaml (pid {pid})" in err, err
    assert "Traceback" not in err
    log = workdir.log.read_text()  # the loser's engine saw the winner's, or lost the lock
    assert log.count("devamb engine ready") == 1, log
    assert accepts(port)

    rc, out, err = await devamb("down", cwd=project)
    assert rc == 0 and f"stopped engine {pid}" in out, err
    assert await gone(pid)
    assert sorted(p.name for p in workdir.root.iterdir()) == ["engine.log"]  # nothing behind


async def test_a_second_headless_engine_names_the_one_holding_the_lock(project: Path) -> None:
    write_profile(project)
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    workdir = Workdir.beside(project / "devamb.yaml")
    pid = int(workdir.pid.read_text())
    # as if it had looked for an engine before the first one started: straight to the engine
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from pathlib import Path; "
        "from devamb.control.workdir import Workdir; from devamb.engine.assembly import "
        "load_profile; from devamb.engine.runner import run_engine; p = Path(sys.argv[1]); "
        "sys.exit(run_engine(load_profile(p), Workdir.beside(p), reset=True))",
        str(project / "devamb.yaml"),
        cwd=project, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 1
    assert f"engine pid {pid} already holds {workdir.lock}" in err_bytes.decode()
    assert int(workdir.pid.read_text()) == pid and workdir.lock.exists()
    assert (await devamb("status", cwd=project))[0] == 0  # the first one is untouched
    assert (await devamb("down", cwd=project))[0] == 0
    assert not workdir.lock.exists()


async def test_a_killed_engines_lock_file_does_not_stop_the_next(project: Path) -> None:
    write_profile(project)
    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    workdir = Workdir.beside(project / "devamb.yaml")
    pid = int(workdir.pid.read_text())
    os.kill(pid, signal.SIGKILL)
    assert await gone(pid)
    assert workdir.lock.exists()  # left behind, but nobody holds it
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    assert (await devamb("down", cwd=project))[0] == 0
    assert sorted(p.name for p in workdir.root.iterdir()) == ["engine.log"]


# -- a second Ctrl-C during the drain cuts it ------------------------------------------------------


async def test_a_second_sigint_during_the_drain_cuts_it(
    project: Path, upstream: HttpUpstream
) -> None:
    port = write_profile(project, upstream.url, timeout="120s")  # the drain: up to 120 s
    output = project / "engine.out"
    with open(output, "wb") as out:
        engine = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devamb", "up", "--headless", cwd=project,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=ctrl_c_as_in_a_shell,
        )  # fmt: skip
    try:
        await wait_for(lambda: accepts(port), "the listener")
        async with aiohttp.ClientSession() as client:
            slow = asyncio.ensure_future(client.get(f"http://127.0.0.1:{port}/slow/25"))
            await _wait_in_flight(project)
            engine.send_signal(signal.SIGINT)
            await wait_for(lambda: "waiting up to 120s" in output.read_text(), "the drain")
            await asyncio.sleep(1.0)
            assert engine.returncode is None and not slow.done()  # still draining
            engine.send_signal(signal.SIGINT)
            # cut: an error, not the answer the upstream gives after 25 s
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(slow, WAIT)
            assert await asyncio.wait_for(engine.wait(), WAIT) == 0
    finally:
        if engine.returncode is None:
            engine.kill()
            await engine.wait()
    log = output.read_text()
    assert "SIGINT while stopping: cutting the exchanges still in flight now" in log, log
    assert "cut 1 exchange (api 1)" in log, log
    workdir = Workdir.beside(project / "devamb.yaml")
    assert not workdir.socket.exists() and not workdir.pid.exists() and not workdir.lock.exists()
    assert not accepts(port)


def ctrl_c_as_in_a_shell() -> None:
    """In the child, before exec: SIGINT at its default and not blocked, as a terminal's shell
    starts a command. A suite started as a background job of a non-interactive shell (`cmd &`,
    as CI scripts do) runs with SIGINT ignored, and an ignored signal stays ignored across exec
    in every process below it: the engine would never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


async def _wait_in_flight(project: Path) -> None:
    """Until the engine counts one exchange in flight (the request reached it)."""
    control = ControlClient(Workdir.beside(project / "devamb.yaml").socket)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if (await control.status())["services"][0]["stats"]["active"] == 1:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the exchange never reached the engine")


# -- q, then the engine stops answering mid-drain: `up` still ends --------------------------------


@needs_tmux
async def test_up_does_not_wait_forever_for_its_stopped_engine(
    project: Path, terminal: Terminal, upstream: HttpUpstream
) -> None:
    port = write_profile(project, upstream.url, timeout="120s")
    workdir = Workdir.beside(project / "devamb.yaml")
    terminal.start(f"{sys.executable} -m devamb up", project, PYTHONPATH)
    await wait_for(lambda: ":" + str(port) in terminal.screen(), "the dashboard", terminal)
    engine = int(workdir.pid.read_text())
    async with aiohttp.ClientSession() as client:
        slow = asyncio.ensure_future(client.get(f"http://127.0.0.1:{port}/slow/100"))
        await _wait_in_flight(project)
        terminal.keys("q")  # the engine drains the exchange for up to 120 s
        await wait_for(lambda: "stopping engine pid" in terminal.screen(), "the drain", terminal)
        os.kill(engine, signal.SIGSTOP)  # and now it answers nothing, nor ends
        await wait_for(terminal.dead, "devamb up to end", terminal)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(slow, WAIT)
    assert f"killed engine pid {engine}" in terminal.screen(), terminal.screen()
    assert await gone(engine)
    assert not workdir.socket.exists() and not workdir.pid.exists()
    assert not accepts(port)


# -- the shared socket folder must be private (as tmux checks /tmp/tmux-UID) ---------------------


async def test_a_shared_socket_folder_others_can_enter_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # too deep for a unix socket path: temp fallback
    deep.mkdir(parents=True)
    write_profile(deep)
    tmp = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: tmp_path under xdist is too
    shared = tmp / f"devamb-{os.getuid()}"  # deep for a socket path (that falls back to /tmp)
    shared.mkdir()
    shared.chmod(0o777)  # made by someone else, or opened to everyone
    try:
        rc, _, err = await devamb("up", "--detach", cwd=deep, env={"TMPDIR": str(tmp)})
        assert rc == 1
        assert f"refusing to use {shared}" in err and "0777" in err, err
        rc, _, err = await devamb("status", cwd=deep, env={"TMPDIR": str(tmp)})
        assert rc == 1 and "refusing to use" in err, err
        shared.chmod(0o700)  # fixed: it works
        rc, _, err = await devamb("up", "--detach", cwd=deep, env={"TMPDIR": str(tmp)})
        assert rc == 0, err
        assert list(shared.glob("*.sock"))
    finally:
        await devamb("down", cwd=deep, env={"TMPDIR": str(tmp)})
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_socket_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to make a folder owned by another user")
    folder = tmp_path / f"devamb-{os.getuid()}"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody's, even with a private mode
    with pytest.raises(UnsafeSocketDir, match="belongs to uid 65534"):
        private_dir(folder)


async def test_a_new_engine_never_takes_over_a_live_engines_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "engine.sock"
    first = ControlServer(FakeControl(), socket_path)
    await first.start()
    try:
        with pytest.raises(SocketInUse):
            await ControlServer(FakeControl(), socket_path).start()
        assert socket_path.exists()
        async with ControlClient(socket_path) as client:
            assert (await client.status())["name"]  # the first one still answers
    finally:
        await first.stop()


# -- "no engine" messages in the user's terms ---------------------------------------------------


async def test_no_engine_messages_say_what_is_wrong_and_what_to_run(project: Path) -> None:
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    rc, _, err = await devamb("-p", "staging", "status", cwd=elsewhere)
    assert rc == 3
    assert f"no profile {elsewhere / 'profiles' / 'staging.yaml'}" in err, err
    assert "ssl:default" not in err and "aiohttp" not in err and "Errno" not in err

    write_profile(project)
    rc, _, err = await devamb("status", cwd=project)
    assert rc == 3 and "start one with 'devamb up'" in err, err

    assert (await devamb("up", "--detach", cwd=project))[0] == 0
    pid = int(Workdir.beside(project / "devamb.yaml").pid.read_text())
    os.kill(pid, signal.SIGKILL)  # died: its socket file stays behind
    assert await gone(pid)
    for command in (("status",), ("traffic",), ("switch", "api", "a"), ("down",)):
        rc, _, err = await devamb(*command, cwd=project)
        assert rc == 3, (command, err)
        assert "no engine is running for devamb.yaml" in err, (command, err)
        assert "Cannot connect" not in err and "Errno" not in err, (command, err)


async def test_validate_takes_p_like_every_other_command(tmp_path: Path) -> None:
    write_profile(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "devamb.yaml").rename(tmp_path / "profiles" / "other.yaml")
    rc, out, err = await devamb("validate", "-p", "other", cwd=tmp_path)
    assert rc == 0 and "ok (1 services)" in out, err
    rc, out, err = await devamb("-p", "other", "validate", cwd=tmp_path)
    assert rc == 0, err


# -- up --detach waits for a slow engine while it shows progress ---------------------------------


def _fake_engine(workdir: Workdir, script: str) -> launcher.Spawned:
    workdir.ensure()
    with open(workdir.log, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=log)
    return launcher.Spawned(proc, offset)


async def test_a_slow_start_is_waited_for_while_it_shows_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "STALL_TIMEOUT", 1.5)
    monkeypatch.setattr(launcher, "READY_TIMEOUT", 1.5, raising=False)  # the old fixed limit
    port = write_profile(tmp_path)
    workdir = Workdir.beside(tmp_path / "devamb.yaml")
    # loads for 4 s (a line a second, like a big mock file), then starts a real engine
    script = (
        "import os, sys, time\n"
        "for i in range(4):\n"
        "    print(f'loading mocks: {i + 1}/4', flush=True); time.sleep(1)\n"
        f"os.execv(sys.executable, [sys.executable, '-m', 'devamb', 'up', '--headless', "
        f"{str(tmp_path / 'devamb.yaml')!r}])\n"
    )
    spawned = _fake_engine(workdir, script)
    said: list[str] = []
    monkeypatch.setattr(launcher, "PROGRESS_EVERY", 0.5)
    try:
        status = await asyncio.wait_for(launcher.wait_ready(spawned, workdir, said.append), WAIT)
        assert status["services"][0]["listen"].endswith(f":{port}")
        assert any("still starting" in line and "loading mocks" in line for line in said), said
    finally:
        spawned.proc.terminate()
        spawned.proc.wait(10)


async def test_a_start_that_stalls_is_given_up_with_the_log_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "STALL_TIMEOUT", 1.5)
    write_profile(tmp_path)
    workdir = Workdir.beside(tmp_path / "devamb.yaml")
    spawned = _fake_engine(workdir, "import time; print('loading profile', flush=True); "
                                    "time.sleep(60)")
    try:
        with pytest.raises(launcher.LaunchError) as error:
            await asyncio.wait_for(launcher.wait_ready(spawned, workdir), WAIT)
    finally:
        spawned.proc.kill()
        spawned.proc.wait(10)
    message = str(error.value)
    assert "no progress" in message and str(workdir.log) in message
    assert "loading profile" in message
