"""The pytest plugin (devamb.testing.pytest_plugin) as a suite uses it: pytest runs in a
subprocess on a small project (pytester), with real engine processes."""

from __future__ import annotations

import json
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.conftest import free_port

pytest_plugins = ["pytester"]

PROFILE = """\
version: 1
services:
  api:
    listen: 0
    target: a
    targets:
      a: echo
      canned:
        mock: {routes: [{match: {path: /hello}, respond: {status: 201, body: canned}}]}
    faults:
      slow: {kind: latency, delay: 1ms, enabled: false}
"""

HELPERS = """
import json, os, urllib.error, urllib.request

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()

def note(devamb, name):
    # what the test saw, for the outer test: the engine's pid and the listener
    status = devamb.status()
    with open(os.path.join(os.environ["NOTES"], name + ".json"), "w") as f:
        json.dump({"pid": status["engine"]["pid"], "listen": status["services"][0]["listen"],
                   "worker": os.environ.get("PYTEST_XDIST_WORKER")}, f)
"""


ENTRY_POINT = "devamb.testing.pytest_plugin"


def plugin_args() -> list[str]:
    """-p for the plugin unless its entry point is installed (then pytest loads it already)."""
    names = {e.value for e in entry_points(group="pytest11")}
    return [] if ENTRY_POINT in names else ["-p", ENTRY_POINT]


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makefile(".yaml", devamb=PROFILE)
    pytester.makepyfile(helpers=HELPERS)
    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.setenv("NOTES", str(notes))
    # only the plugins the run names: a quicker start than every installed one, and the same
    # run whether devamb's entry point is installed or not
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return notes


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    plugins = ["-p", ENTRY_POINT, "-p", "no:cacheprovider"]
    if "-n" in args:
        plugins += ["-p", "xdist.plugin"]
    return pytester.runpytest_subprocess(*plugins, *args, timeout=240)


def test_the_entry_point_names_the_plugin() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"devamb": ENTRY_POINT}


def gone(pid: int) -> bool:
    """The process ended (a zombie nobody reaps counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_gone(pid: int, within: float = 60.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def notes_of(notes: Path) -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in notes.glob("*.json")}


def test_fixture_gives_a_client_and_puts_the_engine_back(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytester.makepyfile(test_app="""
        from helpers import get, note

        def test_changes_things(devamb):
            note(devamb, "first")
            assert devamb.traffic() == []
            assert get(devamb.url("api") + "/x")[0] == 200
            devamb.faults.add("api", "abort", status=503, name="boom")
            devamb.faults.enable("api", "slow")
            devamb.switch("api", "canned")
            assert get(devamb.url("api") + "/hello")[0] == 503

        def test_sees_the_profile_again(devamb):
            note(devamb, "second")
            assert devamb.traffic() == []
            faults = devamb.faults.list("api")["api"]
            assert [(f["name"], f["enabled"]) for f in faults] == [("slow", False)]
            assert devamb.service("api")["target"] == "a"
            assert get(devamb.url("api") + "/hello")[0] == 200
    """)
    result = run(pytester)
    result.assert_outcomes(passed=2)
    seen = notes_of(project)
    assert seen["first"]["pid"] == seen["second"]["pid"]  # one engine for the session
    assert not str(seen["first"]["listen"]).endswith(":0")
    assert wait_gone(int(seen["first"]["pid"]))  # stopped with the session


def test_markers_fault_target_and_profile(pytester: pytest.Pytester, project: Path) -> None:
    other = free_port()
    pytester.makefile(".yaml", other=PROFILE.replace("listen: 0", f"listen: {other}"))
    pytester.makepyfile(test_marks=f"""
        import pytest
        from helpers import get

        @pytest.mark.devamb_fault("api", "abort", status=503, times=1)
        def test_fault_marker(devamb):
            assert get(devamb.url("api") + "/x")[0] == 503
            assert get(devamb.url("api") + "/x")[0] == 200

        @pytest.mark.devamb_target("api", "canned")
        def test_target_marker(devamb):
            assert get(devamb.url("api") + "/hello") == (201, "canned")

        @pytest.mark.devamb_profile("other.yaml", ports="profile")
        def test_profile_marker_with_its_ports(devamb):
            assert devamb.address("api") == ("127.0.0.1", {other})

        @pytest.mark.devamb_fault("api", "abort", status=99)
        def test_a_bad_marker_fails_with_the_engines_words(devamb):
            pass

        @pytest.mark.devamb_target("api")
        def test_a_marker_without_its_target(devamb):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["devamb: expected @pytest.mark.devamb_target(SERVICE, TARGET)*"])
    result.stdout.fnmatch_lines(["devamb: a marker was refused: status: 99 is out of range*"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_profile_option_and_a_missing_profile(pytester: pytest.Pytester, project: Path) -> None:
    pytester.makepyfile(test_opt="""
        def test_it(devamb):
            assert devamb.status()["profile"].endswith("nowhere.yaml")
    """)
    result = run(pytester, "--devamb-profile", "nowhere.yaml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*devamb: no profile at *nowhere.yaml*"])


def test_a_profile_that_does_not_load_fails_with_its_problems(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytester.makefile(".yaml", broken="version: 1\nservices:\n  api: {listen: 0}\n")
    pytester.makepyfile(test_broken="""
        def test_it(devamb):
            pass
    """)
    result = run(pytester, "--devamb-profile", "broken.yaml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*did not start*", "*broken.yaml:3:*targets*"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_a_failed_test_reports_the_exchanges_it_caused(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytester.makepyfile(test_fail="""
        from helpers import get

        def test_passes_quietly(devamb):
            get(devamb.url("api") + "/quiet")

        def test_fails(devamb):
            get(devamb.url("api") + "/first")
            get(devamb.url("api") + "/second")
            devamb.wait_for("~u /second")
            assert False, "the app misbehaved"
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*- devamb exchanges -*",
        "*api*a*200*GET /first",
        "*api*a*200*GET /second",
    ])
    result.stdout.no_fnmatch_line("*GET /quiet*")  # another test's

    filtered = run(pytester, "--devamb-report", "~u /second")
    filtered.stdout.fnmatch_lines(["*- devamb exchanges matching ~u /second -*", "*GET /second"])
    filtered.stdout.no_fnmatch_line("*GET /first*")
    off = run(pytester, "--devamb-report", "off")
    off.stdout.no_fnmatch_line("*devamb exchanges*")


def test_xdist_one_engine_per_worker(pytester: pytest.Pytester, project: Path) -> None:
    pytester.makepyfile(test_many="""
        import pytest
        from helpers import get, note

        @pytest.mark.parametrize("n", range(6))
        @pytest.mark.devamb_fault("api", "abort", status=503)
        def test_each(devamb, n):
            note(devamb, f"t{n}")
            assert get(devamb.url("api") + f"/{n}")[0] == 503
            assert [x["path"] for x in devamb.traffic()] == [f"/{n}"]
    """)
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=6)
    seen = notes_of(project).values()
    engines = {(n["worker"], n["pid"], n["listen"]) for n in seen}  # one per worker...
    assert len(engines) == len({n["worker"] for n in seen}) and len(engines) >= 1
    assert all(str(n["worker"]).startswith("gw") for n in seen)
    assert len({n["listen"] for n in seen}) == len(engines)  # ... each on ports of its own
    assert all(wait_gone(int(str(n["pid"]))) for n in seen)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_an_interrupted_run_leaves_no_engine(
    pytester: pytest.Pytester, project: Path, how: str
) -> None:
    pytester.makepyfile(test_interrupt=f"""
        import os, signal
        from helpers import note

        def test_interrupted(devamb):
            devamb.faults.add("api", "abort")
            note(devamb, "engine")
            # Ctrl-C as a terminal gives it: a suite started as a background job (`cmd &` in a
            # non-interactive shell) runs with SIGINT ignored, inherited down to this process
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGINT}})
            os.kill(os.getpid(), signal.{how})
    """)
    result = run(pytester)
    assert result.ret != 0
    pid = int(str(notes_of(project)["engine"]["pid"]))
    assert wait_gone(pid), f"engine {pid} outlived pytest ({how})"


def test_a_conftest_fixture_named_devamb_wins(pytester: pytest.Pytester, project: Path) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def devamb():
            return "the project's own"
    """)
    pytester.makepyfile(test_own="""
        def test_it(devamb):
            assert devamb == "the project's own"
    """)
    run(pytester).assert_outcomes(passed=1)


def test_the_plugin_loads_without_a_profile_when_unused(pytester: pytest.Pytester) -> None:
    """As it is installed: loaded by its entry point (or -p), in a suite that never uses it."""
    pytester.makepyfile(test_plain="def test_it():\n    pass\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=1)
