"""The remote host name is resolved on the bastion's side, as `ssh -L` does: the sshd here runs
with an /etc/hosts of its own (a mount namespace), holding names this machine cannot resolve;
HTTP, TCP and a health-checked pool reach upstreams by those names through it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import EngineFactory, listen_url
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes


def namespaces_work() -> bool:
    try:
        done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"api-{tag}.bastion-only.test", f"db-{tag}.bastion-only.test"


@pytest.fixture
def private_sshd(tmp_path: Path, names: tuple[str, str]) -> Iterator[Sshd]:
    if not namespaces_work():
        pytest.skip("needs a mount namespace (unshare --mount) for the bastion's /etc/hosts")
    hosts = tmp_path / "bastion_hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in names))
    server = Sshd(tmp_path / "sshd", hosts=hosts).start()
    yield server
    server.stop()


async def test_names_only_the_bastion_can_resolve(
    private_sshd: Sshd, names: tuple[str, str], tmp_path: Path, make_engine: EngineFactory,
    upstream: HttpUpstream, upstream2: HttpUpstream,
) -> None:
    api, db = names
    for name in names:  # this machine does not know them
        with pytest.raises(socket.gaierror):
            await asyncio.get_running_loop().getaddrinfo(name, 80)
    echo = await TcpUpstream(echo_bytes).start()
    try:
        engine = await make_engine(
            "version: 1\nbastions:\n" + bastion_yaml(private_sshd, tmp_path) + "services:\n"
            "  api:\n    listen: 0\n    target: remote\n    targets:\n"
            f"      remote: {{url: 'http://{api}:{upstream.port}', via: jump}}\n"
            "      pool:\n        via: jump\n        health: {path: /up, interval: 1s}\n"
            f"        endpoints: ['http://{api}:{upstream.port}', 'http://{db}:{upstream2.port}']\n"
            "  raw:\n    listen: 0\n    protocol: tcp\n    target: remote\n    targets:\n"
            f"      remote: {{url: 'tcp://{db}:{echo.port}', via: jump}}\n"
        )
        base = listen_url(engine, "api")
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/who") as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["upstream"] == "up"
            seen = set()
            for _ in range(6):
                async with client.get(f"{base}/who", headers={"X-Devamb-Target": "pool"}) as r:
                    assert r.status == 200, await r.text()
                    seen.add((await r.json())["upstream"])
            assert seen == {"up", "up2"}
        host, port = engine.services["raw"].bound  # type: ignore[misc]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"resolved over there")
        assert await reader.readexactly(19) == b"resolved over there"
        writer.close()
    finally:
        await echo.stop()
