"""A bastion that stops answering without closing anything (its sshd session SIGSTOPped: a
frozen host, a dead NAT): keepalive notices, the tunnel is marked down with the reason,
exchanges in flight get the clean error, and the bastion reconnects by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import EngineFactory, listen_url
from tests.replicas import eventually
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml, both_go_through
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes


async def test_a_frozen_bastion_is_noticed_by_keepalive_and_reconnected(
    own_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    echo = await TcpUpstream(echo_bytes).start()
    frozen: list[int] = []
    try:
        engine = await make_engine(
            "version: 1\nbastions:\n" + bastion_yaml(own_sshd, tmp_path, keepalive="1s")
            + "services:\n"
            "  api:\n    listen: 0\n    timeout: 60s\n    connect_timeout: 30s\n"
            "    target: remote\n    targets:\n"
            f"      remote: {{url: '{upstream.url}', via: jump}}\n"
            "  raw:\n    listen: 0\n    protocol: tcp\n    target: remote\n    targets:\n"
            f"      remote: {{url: 'tcp://127.0.0.1:{echo.port}', via: jump}}\n"
        )
        bastion = engine.ctx.tunnels.get("jump")
        assert bastion is not None
        base = listen_url(engine, "api")
        host, port = engine.services["raw"].bound  # type: ignore[misc]
        async with aiohttp.ClientSession() as client:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            before = upstream.app["slow_started"]
            waiting = asyncio.ensure_future(client.get(f"{base}/slow/60"))
            await eventually(lambda: upstream.app["slow_started"] > before, 20, "in flight")

            frozen = own_sshd.freeze_sessions()  # no FIN, no RST: the host just goes quiet
            assert frozen
            # a new exchange opening its channel on the frozen connection is not lost with
            # it: it waits for the reconnect (within the service's connect timeout)
            newcomer = asyncio.ensure_future(client.get(f"{base}/hello"))
            response = await asyncio.wait_for(waiting, 60)
            assert response.status == 502
            assert response.headers["x-devamb-error"] == "tunnel-down"
            reason = (await response.json())["reason"]
            assert "tunnel-down" in reason and "keepalive" in reason
            with pytest.raises(ConnectionResetError):  # the TCP relay passes a reset on
                await asyncio.wait_for(reader.readexactly(1), 60)
            writer.close()
            assert bastion.connects >= 1
            assert "keepalive" in (bastion.last_error or "")
            shown = next(b for b in (await engine.status())["bastions"] if b["name"] == "jump")
            assert "keepalive" in (shown["last_error"] or "")
            late = await asyncio.wait_for(newcomer, 60)
            assert late.status == 200, await late.text()

            # the listener still answers (only the old session is frozen): a new exchange
            # waits for the reconnect and goes through, with no engine restart
            await both_go_through(client, base, (host, port))
        assert bastion.state == "up" and bastion.connects == 2
    finally:
        own_sshd.thaw(frozen)
        await echo.stop()


@pytest.fixture
def inner_sshd(tmp_path: Path, own_sshd: Sshd) -> Iterator[Sshd]:
    server = Sshd(tmp_path / "inner", client_key=own_sshd.client_key).start()
    yield server
    server.stop()


async def test_a_frozen_jump_hop(
    own_sshd: Sshd, inner_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory,
    upstream: HttpUpstream,
) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(own_sshd, outer, name="edge", keepalive="1s")
        + bastion_yaml(inner_sshd, tmp_path, name="inner", jump="edge", keepalive="1s")
        + "services:\n  api:\n    listen: 0\n    connect_timeout: 60s\n    target: remote\n"
        f"    targets:\n      remote: {{url: '{upstream.url}', via: inner}}\n"
    )
    base = listen_url(engine, "api")
    inner = engine.ctx.tunnels.get("inner")
    assert inner is not None
    frozen: list[int] = []
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/hello") as response:
                assert response.status == 200
            frozen = own_sshd.freeze_sessions()  # the edge goes quiet under the inner one
            assert frozen
            await eventually(lambda: inner.connects == 2, 90, "a reconnect through the edge")
            assert "keepalive" in (inner.last_error or "")
            async with client.get(f"{base}/hello") as response:
                assert response.status == 200
    finally:
        own_sshd.thaw(frozen)
