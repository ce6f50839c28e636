"""devamb's pytest plugin (entry point `pytest11`): a `devamb` fixture, markers, and the
exchanges of a failed test in its report.

    @pytest.mark.devamb_fault("payments", "abort", status=503, times=1)
    def test_checkout_survives_a_503(devamb):
        app = make_app(payments_url=devamb.url("payments"))
        assert app.checkout().retried
        devamb.wait_for("~s payments & ~c 503")

One engine runs per profile and per pytest process (so one per pytest-xdist worker), started
when a test first asks for it, its files in the session's temp folder and, by default, every
listener on a free port (`--devamb-ports profile` keeps the profile's). Before each test the
recorded traffic is cleared and the markers applied; after it the faults, targets and
scenarios are put back as the profile has them (an engine that cannot be put back is
restarted). The engine ends with the session, with its lifeline if pytest dies, so no engine
outlives the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# devamb itself is imported when a test first asks for it: the plugin loads in every pytest run
if TYPE_CHECKING:
    from devamb.client import Client
    from devamb.testing.baseline import Baseline
    from devamb.testing.engine import EngineProcess

CLIENT = pytest.StashKey["Client"]()
Key = tuple[Path, bool]  # (profile, free ports)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("devamb", "devamb: faults and targets of an ambassador engine")
    group.addoption("--devamb-profile", metavar="PATH", default=None,
                    help="Profile the `devamb` fixture starts (default: devamb.yaml in the "
                         "rootdir; a test may name another with @pytest.mark.devamb_profile).")
    group.addoption("--devamb-ports", choices=("free", "profile"), default=None,
                    help="free: every listener on a free port (the default; read them with "
                         "devamb.url(SERVICE)); profile: the ports the profile says.")
    group.addoption("--devamb-report", metavar="FILTER", default=None,
                    help="Which exchanges a failed test's report shows: a filter expression "
                         "(default: all the test caused), or 'off'.")
    group.addoption("--devamb-report-limit", metavar="N", type=int, default=None,
                    help="At most N exchanges in a failed test's report (default 50).")
    parser.addini("devamb_profile", "the devamb fixture's profile (see --devamb-profile)")
    parser.addini("devamb_ports", "free or profile (see --devamb-ports)")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "devamb_profile(path, ports=None): the profile the devamb fixture starts for this test "
        "(relative to the rootdir); ports 'free' or 'profile'",
        "devamb_fault(service, kind, **keys): a fault the devamb fixture adds before the test "
        "(the profile's keys: status=503, delay='300ms', times=1, name=...)",
        "devamb_target(service, target): the target the devamb fixture switches to before the "
        "test",
    ):
        config.addinivalue_line("markers", line)


class Engines:
    """The engines of this pytest process, one per (profile, ports), each with its baseline."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[Key, tuple[EngineProcess, Baseline]] = {}
        self.failed: dict[Key, str] = {}  # engines that could not start, and why

    def get(self, key: Key) -> tuple[EngineProcess, Baseline]:
        from devamb.testing.baseline import Baseline
        from devamb.testing.engine import EngineProcess, LaunchError

        found = self.running.get(key)
        if found is not None and found[0].running:
            return found
        if found is not None:
            self.drop(key)
        if key in self.failed:
            pytest.fail(self.failed[key], pytrace=False)
        profile, free = key
        engine = EngineProcess(profile, self.folder / f"engine{len(list(self.folder.iterdir()))}",
                               free_ports=free)
        try:
            engine.start()
        except LaunchError as exc:
            self.failed[key] = f"devamb: the engine for {profile} did not start:\n{exc}"
        if key in self.failed:
            pytest.fail(self.failed[key], pytrace=False)
        self.running[key] = engine, Baseline.of(engine.client)
        return self.running[key]

    def drop(self, key: Key) -> None:
        engine, _ = self.running.pop(key)
        engine.stop()

    def stop_all(self) -> None:
        for key in list(self.running):
            self.drop(key)


@pytest.fixture(scope="session")
def devamb_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """The engines this pytest process started; all stopped at the end of the session."""
    engines = Engines(tmp_path_factory.mktemp("devamb"))
    try:
        yield engines
    finally:
        engines.stop_all()


def _setting(config: pytest.Config, name: str) -> Any:
    return config.getoption(f"--devamb-{name}") or config.getini(f"devamb_{name}") or None


def _engine_key(request: pytest.FixtureRequest) -> Key:
    config = request.config
    marker = request.node.get_closest_marker("devamb_profile")
    path = marker.args[0] if marker and marker.args else _setting(config, "profile")
    ports = (marker.kwargs.get("ports") if marker else None) or _setting(config, "ports")
    if ports not in (None, "free", "profile"):
        pytest.fail(f"devamb: ports must be 'free' or 'profile', not {ports!r}", pytrace=False)
    profile = Path(config.rootpath, path or "devamb.yaml").resolve()
    if not profile.is_file():
        how = "" if path else " (give one with --devamb-profile or @pytest.mark.devamb_profile)"
        pytest.fail(f"devamb: no profile at {profile}{how}", pytrace=False)
    return profile, ports != "profile"


def _two_args(marker: pytest.Mark, usage: str) -> tuple[str, str]:
    if len(marker.args) != 2 or not all(isinstance(a, str) for a in marker.args):
        pytest.fail(f"devamb: expected @pytest.mark.{usage}, got {marker.name}{marker.args}",
                    pytrace=False)
    return marker.args[0], marker.args[1]


def _apply_markers(node: pytest.Item, client: Client) -> None:
    for marker in reversed(list(node.iter_markers("devamb_target"))):  # the closest wins
        client.switch(*_two_args(marker, "devamb_target(SERVICE, TARGET)"))
    for marker in reversed(list(node.iter_markers("devamb_fault"))):
        service, kind = _two_args(marker, "devamb_fault(SERVICE, KIND, **keys)")
        client.faults.add(service, kind, **marker.kwargs)


@pytest.fixture(name="devamb")
def devamb_fixture(request: pytest.FixtureRequest, devamb_engines: Engines) -> Iterator[Client]:
    """A `devamb.client.Client` of an engine running the profile, with this test's markers
    applied and no traffic recorded yet; put back as the profile has it afterwards."""
    from devamb.client import ControlError

    key = _engine_key(request)
    engine, baseline = devamb_engines.get(key)
    client = engine.client
    refused = None
    try:
        client.clear_traffic()
        _apply_markers(request.node, client)
    except ControlError as exc:
        refused = exc.message
    except BaseException:  # a marker written wrong: the engine is put back all the same
        if not baseline.restore(client):
            devamb_engines.drop(key)
        raise
    if refused is not None:
        if not baseline.restore(client):
            devamb_engines.drop(key)
        pytest.fail(f"devamb: a marker was refused: {refused}", pytrace=False)
    request.node.stash[CLIENT] = client
    try:
        yield client
    finally:
        del request.node.stash[CLIENT]
        if not baseline.restore(client):
            devamb_engines.drop(key)  # the next test gets a new one


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    client = item.stash.get(CLIENT, None)
    if client is None or not report.failed or report.when == "teardown":
        return report
    choice = item.config.getoption("--devamb-report")
    if choice == "off":
        return report
    limit = item.config.getoption("--devamb-report-limit") or 50
    from devamb.client import ControlError
    from devamb.client.text import exchange_line

    try:
        exchanges = client.traffic(filter=choice, limit=limit)
        text = "\n".join(exchange_line(x) for x in exchanges) or "(none)"
    except ControlError as exc:
        text = f"(could not read them: {exc.message})"
    title = "devamb exchanges" + (f" matching {choice}" if choice else "")
    report.sections.append((title, text))
    return report
