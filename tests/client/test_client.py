"""The documented client (devamb.client) against a real engine process started for a profile
(devamb.testing.engine), as a test suite or a script uses it."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devamb.client import (
    AsyncClient,
    Client,
    ControlError,
    EngineUnavailable,
    NotFound,
    WaitTimeout,
)
from devamb.client import faults as f
from devamb.faults.registry import KINDS
from devamb.faults.spec import COMMON_KEYS, parse_fault_json
from devamb.testing.engine import EngineProcess

PROFILE = """\
version: 1
services:
  api:
    listen: 0
    target: a
    targets:
      a: echo
      b: echo
      canned:
        mock: {routes: [{match: {path: /hello}, respond: {json: {hi: there}}}]}
scenarios:
  blip:
    steps:
      - {at: 0s, service: api, add: {name: blip, kind: abort, status: 502}}
      - {at: 1s, service: api, remove: blip}
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    folder = tmp_path_factory.mktemp("project")
    (folder / "devamb.yaml").write_text(PROFILE)
    process = EngineProcess(folder / "devamb.yaml", folder).start()
    yield process
    process.stop()


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[Client]:
    with Client.connect(engine.profile.parent) as client:
        yield client
        client.faults.clear()
        client.switch("api", "a")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_connect_by_folder_profile_or_socket(engine: EngineProcess) -> None:
    for where in (engine.profile.parent, engine.profile, engine.workdir.socket):
        with Client.connect(where) as client:
            assert client.status()["engine"]["pid"] == engine.pid


def test_free_port_is_read_from_status_and_switch_reroutes(client: Client) -> None:
    host, port = client.address("api")
    assert host == "127.0.0.1" and port > 0
    client.switch("api", "canned")
    assert get(client.url("api") + "/hello") == (200, b'{"hi": "there"}')
    assert client.service("api")["target"] == "canned"


def test_unknown_names_raise_not_found_with_the_engines_message(client: Client) -> None:
    with pytest.raises(NotFound, match="no target 'nope'; known: a, b, canned"):
        client.switch("api", "nope")
    with pytest.raises(NotFound, match="unknown service 'nope'"):
        client.address("nope")


def test_fault_builders_add_remove_clear(client: Client) -> None:
    added = client.faults.add("api", f.Abort(status=418, body="teapot", times=1, name="tea"))
    assert (added["name"], added["params"]["status"], added["times"]) == ("tea", 418, 1)
    assert get(client.url("api") + "/x") == (418, b"teapot")
    assert get(client.url("api") + "/x")[0] == 200  # `times: 1` spent
    client.faults.add("api", "latency", delay="20ms", match=f.Match(path="/slow*"))
    assert {x["name"] for x in client.faults.list("api")["api"]} == {"tea", "latency"}
    client.faults.remove("api", "tea")
    with pytest.raises(NotFound):
        client.faults.get("api", "tea")
    client.faults.disable("api", "latency")
    assert client.faults.get("api", "latency")["enabled"] is False
    client.faults.clear("api")
    assert client.faults.list("api") == {"api": []}


def test_a_bad_fault_is_refused_with_the_key_named(client: Client) -> None:
    with pytest.raises(ControlError, match="status") as info:
        client.faults.add("api", f.Abort(status=99))
    assert info.value.status == 400


def test_wait_for_an_exchange_that_comes_later(client: Client) -> None:
    client.clear_traffic()
    url = client.url("api") + "/later"
    threading.Timer(0.5, get, (url,)).start()
    found = client.wait_for("~u /later", timeout=30)
    assert found["path"] == "/later" and found["status"] == 200
    # one already recorded counts too, unless `after` says from where
    assert client.wait_for("~u /later", timeout=30)["id"] == found["id"]
    with pytest.raises(WaitTimeout, match="no exchange matching '~u /later'"):
        client.wait_for("~u /later", timeout=1, after=found["id"])


def test_wait_for_refuses_a_bad_filter(client: Client) -> None:
    with pytest.raises(ControlError, match="unknown operator ~q"):
        client.wait_for("~q", timeout=5)


def test_traffic_filters(client: Client) -> None:
    client.clear_traffic()
    get(client.url("api") + "/one")
    get(client.url("api") + "/two")
    client.wait_for("~u /two", timeout=30)
    assert [x["path"] for x in client.traffic()] == ["/one", "/two"]
    one = client.traffic(filter="~u /one")
    assert [x["path"] for x in one] == ["/one"]
    assert client.curl(one[0]["id"]).startswith("curl ")
    assert client.exchange(one[0]["id"])["path"] == "/one"


def test_scenario_run_waits_for_its_end(client: Client) -> None:
    ran: list[dict[str, object]] = []
    thread = threading.Thread(target=lambda: ran.append(client.scenario.run("blip", 60)))
    thread.start()
    seen = False  # the step's fault, while the scenario runs
    deadline = time.monotonic() + 60
    while not seen and thread.is_alive() and time.monotonic() < deadline:
        seen = any(x["name"] == "blip" for x in client.faults.list("api")["api"])
    thread.join()
    assert seen and ran and ran[0]["running"] is False
    assert client.faults.list("api")["api"] == []  # the step's fault is gone at the end


def test_record_writes_a_mock_file(client: Client, engine: EngineProcess) -> None:
    to = engine.profile.parent / "mocks" / "api.yaml"
    with client.record("api", to=str(to)) as recording:
        get(client.url("api") + "/recorded")
        client.wait_for("~u /recorded", timeout=30)
    assert recording.files and to.exists()
    assert "/recorded" in to.read_text()


def test_no_engine_is_engine_unavailable(tmp_path: Path) -> None:
    with Client.connect(tmp_path) as client, pytest.raises(EngineUnavailable, match="no engine"):
        client.status()


async def test_async_client_same_api(engine: EngineProcess) -> None:
    async with AsyncClient.connect(engine.profile) as client:
        await client.faults.add("api", f.Abort(status=503, name="x"))
        assert (await client.faults.get("api", "x"))["params"]["status"] == 503
        await client.faults.remove("api", "x")
        assert (await client.service("api"))["target"] == "a"


async def test_an_async_wait_leaves_the_loop_free(client: Client) -> None:
    """In an async test the request and the wait share one loop: the wait must not block it."""
    import aiohttp

    async with client.async_client() as engine, aiohttp.ClientSession() as http:
        waiting = asyncio.ensure_future(engine.wait_for("~u /from-the-loop", timeout=30))
        async with http.get(await engine.url("api") + "/from-the-loop") as resp:
            assert resp.status == 200
        assert (await waiting)["path"] == "/from-the-loop"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_has_a_builder_with_its_keys(kind: str) -> None:
    builder = f.BUILDERS[kind]
    own = {x.name for x in dataclasses.fields(builder)} - {
        x.name for x in dataclasses.fields(f.Common)
    }
    assert own == set(KINDS[kind].keys)
    common = {"for" if x.name == "duration" else x.name for x in dataclasses.fields(f.Common)}
    assert common - {"name"} == set(COMMON_KEYS) - {"kind"}


@pytest.mark.parametrize(
    "builder",
    [
        f.Latency("300ms", jitter=0.05, on="response", probability=0.5, match=f.Match("GET")),
        f.Abort(status=503, headers={"Retry-After": "1"}, times=2, after=1, duration="30s"),
        f.Reset(after_bytes="1KiB"),
        f.Timeout(timeout="5s"),
        f.Bandwidth("256KiB", direction="upstream"),
        f.Slicer(size=16, delay="5ms"),
        f.LimitData("1KiB"),
        f.SlowClose("2s"),
        f.Malformed(mode="garbage"),
        f.Down(enabled=False),
    ],
    ids=lambda b: b.KIND,
)
def test_builders_make_what_the_engine_accepts(builder: f.FaultBuilder) -> None:
    spec = parse_fault_json("x", builder.to_dict(), "http", {"a": "url"})
    assert spec.kind == builder.KIND


@pytest.mark.parametrize(
    ("protocol", "builder"),
    [
        ("postgres", f.Error(sqlstate="40001", match=f.Match(sql="update orders"), times=1)),
        ("redis", f.Error(reply="-READONLY no", match=f.Match(command="SET", key="session:*"))),
        ("postgres", f.Latency("50ms", match=f.Match(sql="select*"))),
        ("redis", f.Reset(match=f.Match(command="GET"))),
    ],
    ids=["pg-error", "redis-error", "pg-latency", "redis-reset"],
)
def test_command_builders_make_what_the_engine_accepts(protocol: str,
                                                       builder: f.FaultBuilder) -> None:
    spec = parse_fault_json("x", builder.to_dict(), protocol, {"a": "url"})
    assert spec.kind == builder.KIND


# Every route of the control API, and where the client offers it (a new route fails this test
# until the client has it too).
CLIENT_OF_ROUTE = {
    "status": "status", "switch": "switch", "exchanges": "traffic", "exchange": "exchange",
    "clear_exchanges": "clear_traffic", "export_curl": "curl", "export_grpcurl": "grpcurl",
    "replay": "replay", "export_har": "har", "events": "events", "shutdown": "shutdown",
    "metrics": "metrics", "container_logs": "logs", "start_recording": "record",
    "stop_recording": "record", "faults": "faults.list", "add_fault": "faults.add",
    "set_fault": "faults.enable", "remove_fault": "faults.remove", "clear_faults": "faults.clear",
    "scenarios": "scenario.list", "start_scenario": "scenario.start",
    "stop_scenario": "scenario.stop", "slow_statements": "slow",
}  # fmt: skip


def test_the_client_offers_every_route(tmp_path: Path) -> None:
    from devamb.control.routes import TABLE

    assert {route.name for route in TABLE} == set(CLIENT_OF_ROUTE)
    with Client(tmp_path / "engine.sock") as client:
        for flavour in (client, client.aio):
            for where in CLIENT_OF_ROUTE.values():
                owner, _, name = where.rpartition(".")
                assert callable(getattr(getattr(flavour, owner) if owner else flavour, name))
    assert set(f.BUILDERS) == set(KINDS)
