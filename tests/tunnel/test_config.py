"""A bastion named by a `~/.ssh/config` alias (HostName, Port, User, IdentityFile from there),
and a profile reload that changes a bastion: the same bastion reconnects with the new
settings, targets keep working without an engine restart."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from devamb.engine.core import Engine
from tests.conftest import EngineFactory, listen_url
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml, known_hosts
from tests.upstreams import HttpUpstream


async def get(engine: Engine) -> int:
    url = f"{listen_url(engine, 'api')}/config"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200, await response.text()
        return response.status


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
