"""Docker targets against a real Docker engine: resolving, following, starting and removing.

Traffic only ever goes to 127.0.0.1 (host networking or ports published on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest

from devamb.control.protocol import ControlError
from devamb.engine.core import Engine
from tests.conftest import EngineFactory, Notices, free_port, listen_url
from tests.targets.docker.conftest import RUN_ID, TEST_IMAGE, TEST_LABEL, HttpdFactory

pytestmark = pytest.mark.docker
FOLLOW_WITHIN = 1.0  # seconds: changes in Docker show up in devamb within this


def profile(docker_yaml: str, protocol: str = "http", target: str = "box") -> str:
    return f"""
    version: 1
    services:
      api:
        listen: 0
        protocol: {protocol}
        target: {target}
        targets:
          box: {{docker: {docker_yaml}}}
          debug: echo
    """


async def until(condition: Callable[[], bool], what: str, within: float = FOLLOW_WITHIN) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)


def target(engine: Engine, name: str = "box") -> dict[str, Any]:
    status = engine.services["api"].status()
    return next(t for t in status["targets"] if t["name"] == name)


async def get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


# -- by name ------------------------------------------------------------------------------------


async def test_container_by_name_is_routed_and_followed_through_stop_and_start(
    make_engine: EngineFactory, httpd: HttpdFactory
) -> None:
    container, port = httpd("byname", "hello-byname")
    engine = await make_engine(profile(f"{{container: {container.name}, port: {port}}}"))
    notices = Notices(engine)
    url = listen_url(engine, "api")
    assert await get(f"{url}/") == (200, "hello-byname\n")
    box = target(engine)
    assert box["state"] == "ready" and box["kind"] == "docker"
    assert box["details"]["containers"] == [
        {
            "name": container.name,
            "id": container.id[:12],
            "state": "running",
            "address": f"127.0.0.1:{port}",
            "note": None,
        }
    ]
    assert box["details"]["endpoints"] == [f"127.0.0.1:{port}"]

    await asyncio.to_thread(container.stop, timeout=1)
    await until(lambda: target(engine)["state"] == "stopped", "the stop is followed")
    status, body = await get(f"{url}/")
    assert status == 503 and container.name in body and "exited" in body
    await until(lambda: bool(notices.saying("503")), "a notice about the stop")
    assert container.name in notices.saying("503")[0]

    await asyncio.to_thread(container.start)
    await until(lambda: target(engine)["state"] == "ready", "the start is followed")
    assert await get(f"{url}/") == (200, "hello-byname\n")
    await engine.stop()
    await asyncio.to_thread(container.reload)
    assert container.status == "running"  # devamb did not start it: never stopped by devamb


async def test_container_restarted_on_another_port_is_followed(
    make_engine: EngineFactory, httpd: HttpdFactory
) -> None:
    container, port = httpd("moving", "hello-moving", network="net")
    engine = await make_engine(profile(f"{{container: {container.id[:12]}, port: 8000}}"))
    notices = Notices(engine)
    url = listen_url(engine, "api")
    assert target(engine)["details"]["endpoints"] == [f"127.0.0.1:{port}"]  # the published port
    assert await get(f"{url}/") == (200, "hello-moving\n")

    await asyncio.to_thread(container.restart, timeout=1)
    await asyncio.to_thread(container.reload)
    new_port = int(container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])
    assert new_port != port, "Docker should publish the restarted container on a new port"
    await until(
        lambda: target(engine)["details"]["endpoints"] == [f"127.0.0.1:{new_port}"],
        "the new published port is followed",
    )
    assert await get(f"{url}/") == (200, "hello-moving\n")
    assert notices.saying(f"at 127.0.0.1:{new_port} (was ")


async def test_replaced_container_is_followed(
    make_engine: EngineFactory, httpd: HttpdFactory
) -> None:
    old, port = httpd("replaced", "hello-old")
    engine = await make_engine(profile(f"{{container: {old.name}, port: {port}}}"))
    url = listen_url(engine, "api")
    assert await get(f"{url}/") == (200, "hello-old\n")
    await asyncio.to_thread(old.remove, force=True)
    gone = f"no container {old.name!r}"
    await until(lambda: target(engine)["details"]["reason"] == gone, "the removal is followed")
    status, body = await get(f"{url}/")
    assert status == 503 and gone in body

    new, _ = await asyncio.to_thread(httpd, "replaced", "hello-new", port=port)
    await until(lambda: target(engine)["state"] == "ready", "the replacement is followed")
    assert target(engine)["details"]["containers"][0]["id"] == new.id[:12]
    assert await get(f"{url}/") == (200, "hello-new\n")


async def test_logs_of_a_docker_target_are_tailed_and_followed(
    make_engine: EngineFactory, httpd: HttpdFactory
) -> None:
    prelude = "echo one; echo two; (/bin/busybox sleep 0.5; echo three) & "
    container, port = httpd("logs", "hello-logs", prelude=prelude)
    engine = await make_engine(profile(f"{{container: {container.name}, port: {port}}}"))
    box = engine.services["api"].targets["box"]
    lines = box.logs(tail=1, follow=True)
    async with asyncio.timeout(10):
        assert await anext(lines) == "two"
        assert await anext(lines) == "three"
    await lines.aclose()
    everything = [line async for line in box.logs(tail=100, follow=False)]
    assert everything == ["one", "two", "three"]


# -- by label and Compose labels ------------------------------------------------------------------


async def test_label_matches_every_container_round_robin_and_follows_rescaling(
    make_engine: EngineFactory, httpd: HttpdFactory
) -> None:
    label = f"devamb.test.app={RUN_ID}-lb"
    labels = dict([label.split("=")])
    a, port_a = httpd("lb-a", "a", labels=labels, network="net")
    b, port_b = httpd("lb-b", "b", labels=labels, network="net")
    engine = await make_engine(profile(f'{{label: "{label}", port: 8000}}'))
    url = listen_url(engine, "api")
    box = target(engine)
    assert [c["name"] for c in box["details"]["containers"]] == [a.name, b.name]
    assert box["details"]["endpoints"] == [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"]
    bodies = [(await get(f"{url}/"))[1] for _ in range(4)]
    assert bodies == ["a\n", "b\n", "a\n", "b\n"]

    _c, _ = await asyncio.to_thread(httpd, "lb-c", "c", labels=labels, network="net")
    await until(lambda: len(target(engine)["details"]["endpoints"]) == 3, "scale up is followed")
    assert sorted([(await get(f"{url}/"))[1] for _ in range(3)]) == ["a\n", "b\n", "c\n"]

    await asyncio.to_thread(a.stop, timeout=1)
    await until(lambda: len(target(engine)["details"]["endpoints"]) == 2, "scale down")
    assert {(await get(f"{url}/"))[1] for _ in range(4)} == {"b\n", "c\n"}
    assert target(engine)["details"]["containers"][0]["state"] == "exited"


async def test_compose_service_over_tcp(make_engine: EngineFactory, httpd: HttpdFactory) -> None:
    project, port = f"shop{RUN_ID}", free_port()
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
    container, _ = httpd("compose-web", "hello-compose", labels=labels, port=port)
    httpd("compose-db", "not-me", labels={**labels, "com.docker.compose.service": "db"})
    yaml = f"{{compose: {{project: {project}, service: web}}, port: {port}}}"
    engine = await make_engine(profile(yaml, protocol="tcp"))
    assert [c["name"] for c in target(engine)["details"]["containers"]] == [container.name]
    host, listen_port = engine.services["api"].bound  # type: ignore[misc]

    reader, writer = await asyncio.open_connection(host, listen_port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.") and reply.endswith(b"hello-compose\n")

    await asyncio.to_thread(container.stop, timeout=1)
    await until(lambda: target(engine)["state"] == "stopped", "the stop is followed")
    reader, writer = await asyncio.open_connection(host, listen_port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed at once: nothing to relay to
    writer.close()
    reason = target(engine)["details"]["reason"]
    assert reason.startswith("no running container for compose service") and project in reason


# -- containers devamb starts ---------------------------------------------------------------------


def image_target(port: int, run: str = "on-switch", command: str | None = None) -> str:
    command = command or f'[/bin/busybox, httpd, -f, -p, "127.0.0.1:{port}", -h, /www]'
    return f"""
            docker:
              image: {TEST_IMAGE}
              port: {port}
              network: host
              run: {run}
              wait: 10s
              command: {command}
              labels: {{{TEST_LABEL}: "{RUN_ID}"}}"""


def owned(client: docker.DockerClient, **labels: str) -> list[Any]:
    filters = {"label": [f"{k.replace('_', '.')}={v}" for k, v in labels.items()]}
    return client.containers.list(all=True, filters=filters)


async def test_image_starts_on_switch_and_is_removed_on_stop(
    make_engine: EngineFactory,
    httpd: HttpdFactory,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    project, port = tmp_path.name, free_port()
    # a container with devamb's project labels that this engine did not start: never touched
    bystander, _ = httpd(
        "bystander",
        "bystander",
        labels={"devamb.project": project, "devamb.service": "api", "devamb.target": "made"},
    )
    text = f"""
    version: 1
    services:
      api:
        listen: 0
        target: debug
        targets:
          debug: echo
          made:{image_target(port)}
    """
    engine = await make_engine(text)
    profile_label = str((tmp_path / "devamb.yaml").resolve())
    assert target(engine, "made")["state"] == "stopped"
    assert not owned(docker_client, devamb_profile=profile_label)  # nothing before the switch

    await engine.switch("api", "made")
    made = target(engine, "made")
    assert made["state"] == "ready" and made["details"]["endpoints"] == [f"127.0.0.1:{port}"]
    [container] = owned(docker_client, devamb_profile=profile_label)
    assert container.name == f"devamb-{project}-api-made"
    assert container.labels["devamb.project"] == project
    assert container.labels["devamb.service"] == "api"
    assert container.labels["devamb.target"] == "made"
    assert container.attrs["HostConfig"]["Init"] is True
    assert await get(f"{listen_url(engine, 'api')}/") == (200, "hello-from-container\n")

    await engine.stop()
    assert [c.id for c in owned(docker_client, devamb_project=project)] == [bystander.id]
    await asyncio.to_thread(bystander.reload)
    assert bystander.status == "running"


async def test_image_on_up_first_use_and_a_failing_start(
    make_engine: EngineFactory, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    up_port, lazy_port = free_port(), free_port()
    failing = '[/bin/sh, -c, "echo boom; exit 3"]'
    text = f"""
    version: 1
    services:
      api:
        listen: 0
        target: lazy
        targets:
          lazy:{image_target(lazy_port)}
          up:{image_target(up_port, run="on-up")}
          bad:{image_target(free_port(), run="on-up", command=failing)}
    """
    engine = await make_engine(text)
    url = listen_url(engine, "api")
    # the active on-switch target starts on first use; the request waits for it
    assert await get(f"{url}/") == (200, "hello-from-container\n")
    await until(lambda: target(engine, "up")["state"] == "ready", "the on-up start", within=10)
    assert await get(f"{url}/", **{"X-Devamb-Target": "up"}) == (200, "hello-from-container\n")
    await until(lambda: target(engine, "bad")["state"] == "failed", "the failure", within=10)
    reason = target(engine, "bad")["details"]["reason"]
    assert reason == f"container devamb-{tmp_path.name}-api-bad exited with code 3: boom"
    status, body = await get(f"{url}/", **{"X-Devamb-Target": "bad"})
    assert status == 503 and "exited with code 3: boom" in body
    with pytest.raises(ControlError, match="exited with code 3"):
        await engine.switch("api", "bad")
    assert engine.services["api"].active == "lazy"

    await engine.stop()
    assert not owned(docker_client, devamb_project=tmp_path.name)


async def test_reload_keeps_an_unchanged_container_and_replaces_a_changed_one(
    make_engine: EngineFactory,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("devamb.engine.lifecycle.RETIRE_GRACE", 0.05)
    port = free_port()

    def write(extra: str = "", env: str = "A", made: bool = True) -> str:
        text = f"""
    version: 1
    services:
      api:
        listen: 0
        target: {"made" if made else "debug"}
        targets:
          debug: echo{extra}
"""
        if made:
            text += f"          made:{image_target(port)}\n              env: {{MODE: {env}}}\n"
        (tmp_path / "devamb.yaml").write_text(textwrap.dedent(text))
        return text

    engine = await make_engine(write())
    url = listen_url(engine, "api")
    profile_label = str((tmp_path / "devamb.yaml").resolve())
    assert await get(f"{url}/") == (200, "hello-from-container\n")  # started on first use
    [first] = owned(docker_client, devamb_profile=profile_label)

    async def reloaded(**changes: Any) -> list[Any]:
        write(**changes)
        assert await engine.reload()
        await asyncio.gather(*engine.lifecycle.retiring)  # the replaced targets have closed
        return owned(docker_client, devamb_profile=profile_label)

    # the service changed, this target did not: the new target adopts the running container
    assert [c.id for c in await reloaded(extra="\n          debug2: echo")] == [first.id]
    assert target(engine, "made")["state"] == "ready"
    assert await get(f"{url}/") == (200, "hello-from-container\n")
    # the target's settings changed: its old container goes, and as the active target the
    # new one starts with the reload
    [second] = await reloaded(env="B")
    assert second.id != first.id and "MODE=B" in second.attrs["Config"]["Env"]
    assert await get(f"{url}/") == (200, "hello-from-container\n")
    # the profile dropped the target: its container goes
    assert await reloaded(made=False) == []
