"""A real Docker engine for docker-target tests, and containers that are always cleaned up.

Every container or network a test creates carries TEST_LABEL; containers devamb starts get it
through the profile's `labels:`. A session finalizer removes whatever is left with that label.
Tests reach containers only on 127.0.0.1: host networking, or ports published on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.conftest import free_port

TEST_IMAGE = "devamb-test/busybox:1"
TEST_LABEL = "devamb.test"
RUN_ID = uuid.uuid4().hex[:8]  # tells this session's containers apart from another's


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine at DOCKER_HOST; skips (fails in CI) when none answers or the image is missing."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        _no_docker(f"image {TEST_IMAGE} is missing (run scripts/ci-docker.sh as root)")
    except Exception as exc:
        _no_docker(f"no Docker engine answers at {host} ({exc}); run scripts/ci-docker.sh as root")
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        network.remove()
    client.close()


def _no_docker(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"docker tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def test_network(docker_client: docker.DockerClient) -> str:
    """A user-defined network: on it, ports published on 127.0.0.1 work (docker-proxy)."""
    name = f"devamb-test-{RUN_ID}"
    docker_client.networks.create(name, labels={TEST_LABEL: RUN_ID})
    return name


HttpdFactory = Callable[..., tuple[Container, int]]


@pytest.fixture
def httpd(docker_client: docker.DockerClient, test_network: str) -> Iterator[HttpdFactory]:
    """Start a busybox httpd container answering `text`; returns it and its 127.0.0.1 port.

    `prelude` is shell run first. `network=None` uses host networking (the server binds
    127.0.0.1:PORT); `network="net"` publishes container port 8000 on a random 127.0.0.1 port of
    the test network.
    """
    made: list[Container] = []

    def start(
        name: str,
        text: str,
        *,
        labels: dict[str, str] | None = None,
        network: str | None = None,
        port: int | None = None,
        prelude: str = "",
    ) -> tuple[Container, int]:
        options: dict[str, Any]
        if network is None:
            port = port or free_port()
            options = {"network_mode": "host"}
            bind = f"127.0.0.1:{port}"
        else:
            options = {"network": test_network, "ports": {"8000/tcp": ("127.0.0.1", None)}}
            bind = "8000"
        script = (
            f"{prelude}/bin/busybox mkdir -p /w && echo {text} > /w/index.html"
            f" && exec /bin/busybox httpd -f -p {bind} -h /w"
        )
        container = docker_client.containers.run(
            TEST_IMAGE,
            ["/bin/sh", "-c", script],
            name=f"{name}-{RUN_ID}",
            labels={TEST_LABEL: RUN_ID, **(labels or {})},
            init=True,
            detach=True,
            **options,
        )
        made.append(container)
        if network is not None:
            container.reload()
            port = int(container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])
        assert port is not None
        return container, port

    yield start
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
