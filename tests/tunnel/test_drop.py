"""The bastion's sshd is killed mid-use and started again: exchanges in flight get clean
errors (502 tunnel-down for HTTP, a reset for TCP), new ones wait for the reconnect, and the
engine never restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import EngineFactory, listen_url
from tests.replicas import eventually
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml, both_go_through
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes


async def test_killed_and_restarted_bastion(
    own_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    echo = await TcpUpstream(echo_bytes).start()
    try:
        engine = await make_engine(
            "version: 1\nbastions:\n" + bastion_yaml(own_sshd, tmp_path) + "services:\n"
            "  api:\n    listen: 0\n    target: remote\n    targets:\n"
            f"      remote: {{url: '{upstream.url}', via: jump}}\n"
            "  raw:\n    listen: 0\n    protocol: tcp\n    target: remote\n    targets:\n"
            f"      remote: {{url: 'tcp://127.0.0.1:{echo.port}', via: jump}}\n"
        )
        bastion = engine.ctx.tunnels.get("jump")
        assert bastion is not None and bastion.state == "idle"  # lazily opened
        base = listen_url(engine, "api")
        host, port = engine.services["raw"].bound  # type: ignore[misc]
        async with aiohttp.ClientSession() as client:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            waiting = asyncio.ensure_future(client.get(f"{base}/slow/30"))
            await eventually(lambda: bastion.channels == 2, 10, "the slow request's channel")
            await asyncio.sleep(0.2)  # the request crosses the channel

            own_sshd.kill()
            response = await asyncio.wait_for(waiting, 30)
            assert response.status == 502
            assert response.headers["x-devamb-error"] == "tunnel-down"
            assert "tunnel-down" in (await response.json())["reason"]
            with pytest.raises(ConnectionResetError):  # the TCP relay passes a reset on
                await asyncio.wait_for(reader.readexactly(1), 30)
            writer.close()
            await eventually(lambda: bastion.state in ("down", "connecting"), 10, "down")
            status = await engine.status()
            shown = next(b for b in status["bastions"] if b["name"] == "jump")
            assert shown["last_error"]

            own_sshd.start()  # the same port again
            await both_go_through(client, base, (host, port))  # waits for the reconnect
        assert bastion.state == "up" and bastion.connects == 2
    finally:
        await echo.stop()


async def test_new_requests_fail_cleanly_while_the_bastion_is_down(
    own_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(own_sshd, tmp_path) + "services:\n"
        "  api:\n    listen: 0\n    connect_timeout: 1s\n    target: remote\n    targets:\n"
        f"      remote: {{url: '{upstream.url}', via: jump}}\n"
    )
    own_sshd.kill()
    url = f"{listen_url(engine, 'api')}/hello"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 502
        assert response.headers["x-devamb-error"] == "tunnel-down"
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None
    await eventually(lambda: "unreachable" in (bastion.last_error or ""), 30, "the reason")
    assert bastion.state in ("down", "connecting")


async def test_reconnect_backs_off_and_a_waiting_request_goes_through(
    own_sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(own_sshd, tmp_path) + "services:\n"
        "  api:\n    listen: 0\n    connect_timeout: 60s\n    target: remote\n    targets:\n"
        f"      remote: {{url: '{upstream.url}', via: jump}}\n"
    )
    base = listen_url(engine, "api")
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/hello") as response:
            assert response.status == 200
        own_sshd.kill()  # refused at once from now on: only the backoff paces the retries
        began = asyncio.get_running_loop().time()
        await eventually(lambda: bastion.attempts >= 4, 60, "three retries")
        # 0.5 s, 1 s, 2 s between them: a tight loop would have made thousands by now
        assert asyncio.get_running_loop().time() - began >= 3.0
        assert bastion.state in ("down", "connecting") and bastion.attempts <= 6
        assert "unreachable" in (bastion.last_error or "")

        waiting = asyncio.ensure_future(client.get(f"{base}/hello"))  # waits for the reconnect
        await asyncio.sleep(0.5)
        assert not waiting.done()
        own_sshd.start()
        response = await asyncio.wait_for(waiting, 90)
        assert response.status == 200, await response.text()
    assert bastion.state == "up" and bastion.connects == 2
