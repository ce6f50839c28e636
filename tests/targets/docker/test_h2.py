"""Docker targets on `http2` and `grpc` services, against a real Docker engine.

devamb starts (on switch) a container of the busybox test image that runs a real grpcio server
and the h2 upstream (tests/targets/docker/h2_serve.py) in the container's own network namespace:
the host's Python, its packages and this repository are mounted in read-only. The ports are
published on 127.0.0.1 only, so the one way to the servers is the address the docker target
resolves (`h2_destination`), spoken to over h2c.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import docker
import grpc
import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory, free_port
from tests.grpc.greeter import Client, Types, compile_set
from tests.service.test_http2 import read_answer
from tests.targets.docker.conftest import RUN_ID, TEST_IMAGE, TEST_LABEL
from tests.targets.docker.h2_serve import GRPC_PORT, H2_PORT

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[3]
SERVICE = "test.greet.Greeter"


def python_mounts() -> list[str]:
    """Read-only volumes that let this Python, its packages and the repository run in busybox."""
    wanted = ["/usr", "/lib", "/lib64", sys.base_prefix, sys.prefix, str(REPO)]
    wanted += [p for p in sys.path if os.path.isabs(p)]
    chosen: list[str] = []
    for path in sorted({os.path.normpath(p) for p in wanted if os.path.isdir(p)}):
        if path != "/" and not any(path == c or path.startswith(c + "/") for c in chosen):
            chosen.append(path)
    executable = os.path.realpath(sys.executable)
    assert any(executable.startswith(c + "/") for c in chosen), f"{executable} is not mounted"
    return [f"{os.path.realpath(p)}:{p}:ro" for p in chosen]


def box(port: int, name: str, network: str, data: Path) -> dict[str, Any]:
    """An `image:` docker target running h2_serve, its `port` published on 127.0.0.1."""
    return {"docker": {
        "image": TEST_IMAGE,
        "port": port,
        "network": network,
        "run": "on-switch",
        "wait": "60s",  # Python and grpcio start slowly on a busy machine
        "command": [os.path.realpath(sys.executable), "-m", "tests.targets.docker.h2_serve",
                    "/data/greet.pb"],
        "env": {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "NAME": name},
        "volumes": [*python_mounts(), f"{data}:/data:ro"],
        "labels": {TEST_LABEL: RUN_ID},
    }}


def profile(network: str, data: Path) -> str:
    spare = f"http://127.0.0.1:{free_port()}"
    services = {
        "rpc": {"listen": 0, "protocol": "grpc", "target": "spare", "timeout": "20s",
                "targets": {"box": box(GRPC_PORT, "rpc-box", network, data), "spare": spare}},
        "web": {"listen": 0, "protocol": "http2", "target": "spare", "timeout": "20s",
                "targets": {"box": box(H2_PORT, "web-box", network, data), "spare": spare}},
    }
    return json.dumps({"version": 1, "services": services})


def target(engine: Engine, service: str, name: str = "box") -> dict[str, Any]:
    status = engine.services[service].status()
    return next(t for t in status["targets"] if t["name"] == name)


def port_of(engine: Engine, service: str) -> int:
    bound = engine.services[service].bound
    assert bound is not None
    return bound[1]


async def until(condition: Any, what: str, within: float = 20.0) -> None:
    start = time.monotonic()
    while not await asyncio.to_thread(condition):
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


async def h2_request(port: int, path: str, body: bytes) -> tuple[dict[str, str], bytes,
                                                                  dict[str, str]]:
    """One POST over h2c to devamb: (headers, body, trailers)."""
    client = H2Client("127.0.0.1", port, 20.0)
    try:
        stream = await client.open([(b":method", b"POST"), (b":scheme", b"http"),
                                    (b":authority", f"127.0.0.1:{port}".encode()),
                                    (b":path", path.encode())], end=False)
        await stream.send_data(body, end=True)
        return await read_answer(stream)
    finally:
        client.close()


async def test_http2_and_grpc_calls_reach_the_container_devamb_starts(
    make_engine: EngineFactory, docker_client: docker.DockerClient, test_network: str,
    tmp_path: Path,
) -> None:
    types = Types(compile_set(tmp_path / "greet.pb"))
    engine = await make_engine(profile(test_network, tmp_path))
    await asyncio.gather(engine.switch("rpc", "box"), engine.switch("web", "box"))  # activate

    where: dict[str, str] = {}
    containers: dict[str, str] = {}
    for service, inner in (("rpc", GRPC_PORT), ("web", H2_PORT)):
        status = target(engine, service)
        assert status["kind"] == "docker" and status["state"] == "ready", status
        [endpoint] = status["details"]["endpoints"]
        host, _, published = endpoint.rpartition(":")
        assert host == "127.0.0.1" and int(published) != inner  # the published port
        where[service] = endpoint
        containers[service] = status["details"]["containers"][0]["name"]

    body = os.urandom(50_000)
    headers, echoed, trailers = await h2_request(port_of(engine, "web"), "/echo", body)
    assert headers[":status"] == "200" and headers["x-upstream"] == "web-box"
    assert headers["x-sha256"] == hashlib.sha256(body).hexdigest()
    assert echoed == body and trailers == {"x-end": "done"}

    def calls() -> tuple[Any, list[Any], list[Any]]:
        client = Client(types, port_of(engine, "rpc"))
        try:
            said = client.say(client.hello(name="docker", times=3), timeout=20)
            many = list(client.many(client.hello(name="n", times=5), timeout=20))
            talk = list(client.talk(iter([client.hello(name="abc"), client.hello(name="xyz")]),
                                    timeout=20))
            return said, many, talk
        finally:
            client.close()

    said, many, talk = await asyncio.to_thread(calls)
    assert (said.text, said.count) == ("hello docker", 3)
    assert [(r.text, r.count) for r in many] == [(f"n {i}", i) for i in range(5)]
    assert [r.text for r in talk] == ["cba", "zyx"]

    wanted = {"/echo", f"/{SERVICE}/Say", f"/{SERVICE}/Many", f"/{SERVICE}/Talk"}
    deadline = time.monotonic() + 20  # a call is recorded once its stream has closed, which
    while True:  # may be just after the client has read the last message
        records = [r for r in engine.store.recent(50) if r.path != "/grpc.reflection"]
        by_path = {r.path: r for r in records}
        if set(by_path) >= wanted or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert set(by_path) >= wanted
    assert by_path["/echo"].target == "box"
    assert by_path["/echo"].url == f"http://{where['web']}/echo"
    for method in ("Say", "Many", "Talk"):
        record = by_path[f"/{SERVICE}/{method}"]
        assert record.target == "box" and record.url == f"http://{where['rpc']}/{SERVICE}/{method}"
        note = record.notes["grpc"]
        assert (note["method"], note["status"], note["code"]) == (method, 0, "OK")
    assert by_path[f"/{SERVICE}/Many"].notes["grpc"]["responses"] == 5
    assert by_path[f"/{SERVICE}/Talk"].notes["grpc"]["requests"] == 2

    def logged(service: str) -> str:
        return docker_client.containers.get(containers[service]).logs().decode()

    await until(lambda: "call /echo" in logged("web"), "the h2 request in the container's log")
    await until(lambda: all(f"call /{SERVICE}/{m}" in logged("rpc") for m in ("Say", "Many",
                                                                              "Talk")),
                "the gRPC calls in the container's log")

    # The container goes away: the docker target says so to the next gRPC call.
    await asyncio.to_thread(docker_client.containers.get(containers["rpc"]).stop, timeout=1)
    await until(lambda: target(engine, "rpc")["state"] == "stopped", "the stop is followed")

    def refused() -> grpc.RpcError:
        client = Client(types, port_of(engine, "rpc"))
        try:
            client.say(client.hello(name="late"), timeout=20)
        except grpc.RpcError as exc:
            return exc
        finally:
            client.close()
        raise AssertionError("the call went through to a stopped container")

    error = await asyncio.to_thread(refused)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert containers["rpc"] in error.details()  # type: ignore[attr-defined]
