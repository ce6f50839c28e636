"""Docker targets without an engine: profile parsing, address rules, round robin, no engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from devamb.engine.assembly import load_profile
from devamb.targets.docker.containers import container_view, reachable_address
from devamb.targets.docker.endpoints import Endpoint, RoundRobin
from devamb.targets.docker.selector import Selector
from devamb.targets.docker.spec import DockerTargetSpec
from tests.conftest import EngineFactory, listen_url, load_problems

GOOD = """\
version: 1
name: shop
services:
  api:
    listen: 0
    target: named
    targets:
      named: {docker: {container: api-dev, port: 8000}}
      labelled: {docker: {label: "app=api", port: 8000}}
      labels: {docker: {label: [app=api, tier], port: 8000}}
      composed: {docker: {compose: {project: shop, service: api}, port: 8000}}
      composed-here: {docker: {compose: {service: api}, port: 8000}}
      image:
        docker:
          image: api:dev
          port: 8000
          env: {MODE: dev, WORKERS: 2}
          command: [serve, --port, 8000]
          volumes: [./data:/data:ro, cache:/cache]
          network: host
          run: on-up
          wait: 5s
          labels: {team: payments}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, docker_yaml: str) -> list[str]:
    text = "version: 1\nservices:\n  api:\n    listen: 0\n    targets:\n      box:\n"
    text += textwrap.indent(textwrap.dedent(docker_yaml), " " * 8)
    return load_problems(write(tmp_path, text))


def test_every_docker_form_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    targets = load_profile(path, environ={}).services["api"].targets
    named, labelled, labels, composed, here, image = (
        targets[n] for n in ("named", "labelled", "labels", "composed", "composed-here", "image")
    )
    assert isinstance(named, DockerTargetSpec) and named.selector == Selector(ref="api-dev")
    assert named.describe() == "docker container 'api-dev' port 8000"
    assert labelled.selector.labels == ("app=api",)  # type: ignore[attr-defined]
    assert labels.selector.labels == ("app=api", "tier")  # type: ignore[attr-defined]
    compose_labels = ("com.docker.compose.project=shop", "com.docker.compose.service=api")
    assert composed.selector.labels == compose_labels  # type: ignore[attr-defined]
    assert here.selector.labels == compose_labels  # project defaults to the profile's name
    assert isinstance(image, DockerTargetSpec) and image.run is not None
    run = image.run
    assert (run.image, run.port, run.network, run.wait) == ("api:dev", 8000, "host", 5.0)
    assert run.env == {"MODE": "dev", "WORKERS": "2"}
    assert run.command == ("serve", "--port", "8000")
    assert run.volumes == (f"{tmp_path.resolve()}/data:/data:ro", "cache:/cache")
    assert image.run_mode == "on-up" and image.project == "shop"
    assert image.profile == str(path.resolve())
    assert "devamb.target=image" in image.selector.labels
    assert image.describe() == "docker image api:dev port 8000 (on-up)"


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            "docker: {container: api}",
            "devamb.yaml:7:17: services.api.targets.box.docker: missing required key 'port'",
        ),
        (
            "docker: {container: api, label: a=b, port: 80}",
            "devamb.yaml:7:17: services.api.targets.box.docker: a docker target needs exactly one "
            "of container, label, compose, image; found container, label",
        ),
        (
            "docker: {container: api, port: 80, env: {A: b}}",
            "devamb.yaml:7:44: services.api.targets.box.docker.env: 'env' applies to image "
            "targets only",
        ),
        (
            "docker: {label: '=x', port: 80}",
            "devamb.yaml:7:25: services.api.targets.box.docker.label: '=x' is not a label: "
            "write KEY=VALUE or KEY",
        ),
        (
            "docker: {container: api, port: 70000}",
            "devamb.yaml:7:40: services.api.targets.box.docker.port: 70000 is out of range "
            "1..65535",
        ),
        (
            "docker: {compose: {project: shop}, port: 80}",
            "devamb.yaml:7:27: services.api.targets.box.docker.compose: missing required key "
            "'service'",
        ),
        (
            "docker: {image: x, port: 80, run: always}",
            "devamb.yaml:7:43: services.api.targets.box.docker.run: 'always' is not one of "
            "on-switch, on-up",
        ),
        (
            "docker: {image: x, port: 80, volumes: [data]}",
            "devamb.yaml:7:48: services.api.targets.box.docker.volumes.0: 'data' is not a "
            "volume: write SRC:/PATH or SRC:/PATH:ro",
        ),
        (
            "docker: {image: x, port: 80, prot: 1}",
            "devamb.yaml:7:38: services.api.targets.box.docker.prot: unknown key 'prot' (did "
            "you mean 'port'?); expected one of container, label, compose, image, port, env, "
            "command, volumes, network, run, wait, labels",
        ),
        (
            "docker: {image: x, port: 80, labels: {devamb.target: y}}",
            "devamb.yaml:7:47: services.api.targets.box.docker.labels.devamb.target: "
            "devamb.target is set by devamb",
        ),
    ],
)
def test_bad_docker_settings_are_positioned(tmp_path: Path, yaml: str, expected: str) -> None:
    assert problems(tmp_path, yaml) == [expected]


# -- address rules -----------------------------------------------------------------------------


def attrs(mode: str = "net", ports: dict | None = None, ip: str = "172.18.0.5") -> dict:
    return {
        "Id": "abc123def4567890",
        "Name": "/api-dev",
        "State": {"Status": "running"},
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Ports": ports or {}, "Networks": {"net": {"IPAddress": ip}}},
    }


def test_addresses_follow_docker_networking() -> None:
    assert reachable_address(attrs("host"), 8000) == ("127.0.0.1", 8000)
    wildcard = {
        "8000/tcp": [{"HostIp": "::", "HostPort": "1"}, {"HostIp": "0.0.0.0", "HostPort": "2"}]
    }
    assert reachable_address(attrs(ports=wildcard), 8000) == ("127.0.0.1", 2)
    loopback = {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}
    assert reachable_address(attrs(ports=loopback), 8000) == ("127.0.0.1", 32768)
    assert reachable_address(attrs(ports=loopback), 9000) == ("172.18.0.5", 9000)  # not published
    assert "shares the network" in str(reachable_address(attrs("container:feed"), 80))
    assert "no network address" in str(reachable_address(attrs(ip=""), 80))


def test_container_view_routes_only_running_containers() -> None:
    view = container_view(attrs("host"), 8000)
    assert view.endpoint == Endpoint("127.0.0.1", 8000, "abc123def4567890")
    assert view.to_json() == {
        "name": "api-dev",
        "id": "abc123def456",
        "state": "running",
        "address": "127.0.0.1:8000",
        "note": None,
    }
    stopped = attrs("host") | {"State": {"Status": "exited"}}
    assert container_view(stopped, 8000).endpoint is None


def test_round_robin_hands_out_in_turn_and_restarts_on_change() -> None:
    rr = RoundRobin()
    assert rr.pick() is None
    a, b, c = (Endpoint("127.0.0.1", p) for p in (1, 2, 3))
    assert rr.replace([a, b]) and not rr.replace([a, b])
    assert [rr.pick() for _ in range(3)] == [a, b, a]
    rr.replace([a, b, c])
    assert [rr.pick() for _ in range(4)] == [a, b, c, a]


def test_selector_decides_which_events_matter() -> None:
    by_name = Selector(ref="api-dev")
    event = {"Type": "container", "Action": "die", "Actor": {"ID": "ff00", "Attributes": {}}}
    named = {**event, "Actor": {"ID": "ff00", "Attributes": {"name": "api-dev"}}}
    assert by_name.concerns(named, []) and not by_name.concerns(event, [])
    assert by_name.concerns(event, ["ff00"])  # a known container, renamed or not
    labelled = Selector(labels=("app=api", "tier"))
    attrs_ok = {"app": "api", "tier": "web", "name": "x"}
    assert labelled.concerns({**event, "Actor": {"ID": "1", "Attributes": attrs_ok}}, [])
    other = {"app": "web", "tier": "web"}
    assert not labelled.concerns({**event, "Actor": {"ID": "1", "Attributes": other}}, [])
    execs = {**named, "Action": "exec_start: sh"}
    assert not by_name.concerns(execs, [])
    network = {"Type": "network", "Action": "connect", "Actor": {"Attributes": {"container": "ff"}}}
    assert by_name.concerns(network, ["ff"]) and not by_name.concerns(network, ["aa"])


# -- no Docker engine ----------------------------------------------------------------------------


NO_ENGINE = """
version: 1
services:
  api:
    listen: 0
    target: box
    targets:
      box: {docker: {container: api-dev, port: 8000}}
      made: {docker: {image: "devamb-test/busybox:1", port: 8000}}
      debug: echo
"""


async def test_without_engine_docker_targets_are_unavailable_and_the_rest_works(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = f"unix://{tmp_path}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", dead)
    engine = await make_engine(NO_ENGINE)
    status = await engine.status()
    targets = {t["name"]: t for t in status["services"][0]["targets"]}
    box = targets["box"]
    assert box["state"] == "unavailable" and targets["made"]["state"] == "unavailable"
    reason = f"Docker engine not reachable at {dead}: No such file or directory"
    assert box["details"]["reason"] == reason and box["details"]["docker_host"] == dead
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        resp = await client.get(f"{url}/x")
        body = await resp.json()
        assert resp.status == 503 and body["reason"] == reason and body["target"] == "box"
        resp = await client.get(f"{url}/x", headers={"X-Devamb-Target": "debug"})
        assert resp.status == 200
    await engine.switch("api", "debug")
    with pytest.raises(ControlError, match=r"cannot start container devamb-.*not reachable"):
        await engine.switch("api", "made")
