"""A bastion named by a `~/.ssh/config` alias (HostName, Port, User, IdentityFile from there),
and a profile reload that changes a bastion: the same bastion reconnects with the new
settings, targets keep working without an engine restart."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, listen_url
from tests.replicas import eventually
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml, known_hosts
from tests.upstreams import HttpUpstream


async def get(engine: Engine) -> int:
    url = f"{listen_url(engine, 'api')}/config"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200, await response.text()
        return response.status


def fingerprint(server: Sshd) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", f"{server.host_key}.pub"], capture_output=True,
                         text=True, check=True)
    return out.stdout.split()[1]


def service(upstream: HttpUpstream) -> str:
    return (
        "services:\n  api:\n    listen: 0\n    target: remote\n    targets:\n"
        f"      remote: {{url: '{upstream.url}', via: jump}}\n"
    )


async def test_an_ssh_config_alias(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host staging-bastion\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    kh = known_hosts(tmp_path, sshd)
    engine = await make_engine(
        "version: 1\nbastions:\n"
        f"  jump: {json.dumps({'host': 'staging-bastion', 'known_hosts': str(kh)})}\n"
        + service(upstream)
    )
    assert await get(engine) == 200
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.state == "up"


async def test_a_reload_that_changes_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine("version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path)
                               + service(upstream))
    assert await get(engine) == 200
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.connects == 1
    (tmp_path / "devamb.yaml").write_text(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path, keepalive="5s")
        + service(upstream)
    )
    assert await engine.reload()
    assert engine.ctx.tunnels.get("jump") is bastion and bastion.state == "idle"
    assert bastion.spec.keepalive == 5.0
    assert await get(engine) == 200  # the same target, through the new connection
    assert bastion.connects == 2 and bastion.state == "up"
    (tmp_path / "devamb.yaml").write_text(
        "version: 1\nservices:\n  api:\n    listen: 0\n    target: remote\n    targets:\n"
        f"      remote: '{upstream.url}'\n"
    )
    assert await engine.reload()
    assert engine.ctx.tunnels.get("jump") is None and bastion._closed  # removed: closed


@pytest.fixture
def two_sshd(tmp_path: Path, sshd: Sshd) -> Iterator[tuple[Sshd, Sshd]]:
    edge = Sshd(tmp_path / "edge", client_key=sshd.client_key).start()
    inner = Sshd(tmp_path / "inner", client_key=sshd.client_key).start()
    yield edge, inner
    edge.stop()
    inner.stop()


async def test_a_proxyjump_chain_from_ssh_config(
    two_sshd: tuple[Sshd, Sshd], tmp_path: Path, make_engine: EngineFactory,
    upstream: HttpUpstream, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sshd, inner_sshd = two_sshd  # the edge, and the bastion reached through it
    assert not sshd.sessions()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host edge\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n"
        f"Host inner\n  HostName 127.0.0.1\n  Port {inner_sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  ProxyJump edge\n"
    )
    known_hosts(home / ".ssh", sshd, inner_sshd)  # ~/.ssh/known_hosts, for both hops
    monkeypatch.setenv("HOME", str(home))
    engine = await make_engine(
        "version: 1\nbastions:\n  jump: {host: inner}\n" + service(upstream)
    )
    assert await get(engine) == 200
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.state == "up"
    # the inner sshd saw a connection forwarded by the edge one (its peer is the edge's
    # direct-tcpip, not the engine): the edge's session is its parent's child
    assert bastion.host_key == fingerprint(inner_sshd)


async def test_ssh_agent(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "agent_home"  # no keys of its own: only the agent has one
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(socket_path.exists, 20, "ssh-agent's socket")
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        added = subprocess.run(["ssh-add", str(sshd.client_key)], env=env, capture_output=True)
        assert added.returncode == 0, added.stderr
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        kh = known_hosts(tmp_path, sshd)
        keys = {"host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "known_hosts": str(kh)}
        engine = await make_engine(
            f"version: 1\nbastions:\n  jump: {json.dumps(keys)}\n" + service(upstream)
        )
        assert await get(engine) == 200
        bastion = engine.ctx.tunnels.get("jump")
        assert bastion is not None and bastion.state == "up"
    finally:
        agent.terminate()
        agent.wait()


async def test_an_inline_ssh_via_uses_the_default_key_and_known_hosts(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "inline_home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"  # found as OpenSSH would find it
    key.write_bytes(sshd.client_key.read_bytes())
    key.chmod(0o600)
    known_hosts(home / ".ssh", sshd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    via = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    engine = await make_engine(
        "version: 1\nservices:\n  api:\n    listen: 0\n    target: remote\n    targets:\n"
        f"      remote: {{url: '{upstream.url}', via: '{via}'}}\n"
    )
    assert await get(engine) == 200
    bastion = engine.ctx.tunnels.get(via)
    assert bastion is not None and bastion.state == "up"
    [shown] = (await engine.status())["bastions"]
    assert shown["name"] == via and shown["state"] == "up"
