"""HTTP, websocket and TCP services whose target goes through a real sshd (`via:`), with
checksums; many concurrent connections share the bastion's one SSH connection."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.certs import certificates
from tests.conftest import EngineFactory, free_port, listen_url
from tests.sshd import Sshd
from tests.tunnel.conftest import bastion_yaml
from tests.upstreams import HttpUpstream, TcpUpstream, echo_bytes, pattern_digest


def profile(sshd: Sshd, tmp_path: Path, targets: str, protocol: str = "http") -> str:
    return (
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path)
        + f"services:\n  svc:\n    listen: 0\n    protocol: {protocol}\n    target: remote\n"
        + "    targets:\n" + targets
    )


async def test_http_through_the_bastion_with_checksums(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(profile(
        sshd, tmp_path, f"      remote: {{url: 'http://localhost:{upstream.port}', via: jump}}\n"
    ))
    base = listen_url(engine, "svc")
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/bytes/3000000") as response:
            body = await response.read()
        assert response.status == 200
        assert hashlib.sha256(body).hexdigest() == pattern_digest(3_000_000)
        payload = bytes(range(256)) * 4096
        async with client.post(f"{base}/echo", data=payload) as response:
            seen = await response.json()
        assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
        async with client.ws_connect(f"{base}/ws", protocols=("chat",)) as ws:
            await ws.send_str("through the tunnel")
            assert (await ws.receive()).data == "echo:through the tunnel"
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.state == "up" and bastion.connects == 1
    assert bastion.bytes_in > 3_000_000


async def test_many_concurrent_connections_share_one_ssh_connection(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory
) -> None:
    echo = await TcpUpstream(echo_bytes).start()
    try:
        engine = await make_engine(profile(
            sshd, tmp_path, f"      remote: {{url: 'tcp://127.0.0.1:{echo.port}', via: jump}}\n",
            protocol="tcp",
        ))
        host, port = engine.services["svc"].bound  # type: ignore[misc]

        async def one(i: int) -> str:
            reader, writer = await asyncio.open_connection(host, port)
            data = hashlib.sha256(str(i).encode()).digest() * 4000
            writer.write(data)
            writer.write_eof()
            got = await reader.read()
            writer.close()
            return hashlib.sha256(got).hexdigest() + "/" + hashlib.sha256(data).hexdigest()

        results = await asyncio.gather(*(one(i) for i in range(64)))
        for result in results:
            got, sent = result.split("/")
            assert got == sent
        bastion = engine.ctx.tunnels.get("jump")
        assert bastion is not None
        assert bastion.connects == 1 and bastion.channels_total == 64
    finally:
        await echo.stop()


async def test_https_through_the_bastion_checks_the_upstream_certificate(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory
) -> None:
    ca, cert, key = certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    runner = web.AppRunner(HttpUpstream("tls").app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    try:
        engine = await make_engine(profile(
            sshd, tmp_path,
            f"      remote: {{url: 'https://127.0.0.1:{port}', via: jump, tls: {{ca: '{ca}'}}}}\n"
            f"      untrusted: {{url: 'https://127.0.0.1:{port}', via: jump}}\n",
        ))
        base = listen_url(engine, "svc")
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/bytes/500000") as response:
                body = await response.read()
            assert response.status == 200, body
            assert hashlib.sha256(body).hexdigest() == pattern_digest(500_000)
            async with client.get(f"{base}/x", headers={"X-Devamb-Target": "untrusted"}) as r:
                assert r.status == 502  # the certificate is checked through the tunnel too
    finally:
        await runner.cleanup()


async def test_faults_retries_and_recording_through_the_bastion(
    sshd: Sshd, tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    closed = free_port()  # nothing listens there: the bastion's channel open is refused
    engine = await make_engine(
        "version: 1\nbastions:\n" + bastion_yaml(sshd, tmp_path) + "services:\n"
        "  svc:\n    listen: 0\n    target: pool\n"
        "    retries: {attempts: 2, on: [connect-failure], backoff: 10ms, budget: 1}\n"
        "    targets:\n      pool:\n        via: jump\n"
        f"        endpoints: ['http://127.0.0.1:{closed}', '{upstream.url}']\n"
        "    faults:\n"
        "      slow: {kind: latency, delay: 300ms, match: {path: /slow-me}}\n"
        "      broken: {kind: abort, status: 503, match: {path: /broken}}\n"
    )
    base = listen_url(engine, "svc")
    async with aiohttp.ClientSession() as client:
        for _ in range(4):  # round robin: every other exchange first meets the refused one
            async with client.get(f"{base}/hello") as response:
                assert response.status == 200, await response.text()
        async with client.get(f"{base}/slow-me") as response:
            assert response.status == 200
        async with client.get(f"{base}/broken") as response:
            assert response.status == 503
    found = {e.path: e for e in engine.store.all()}
    retried = [e for e in engine.store.all() if e.path == "/hello" and e.attempts == 2]
    assert retried and all(e.status == 200 and e.retried for e in retried)
    assert "through bastion jump" in retried[0].retried[0]  # the channel open was refused
    assert found["/slow-me"].faults == ["slow"]
    assert (found["/slow-me"].duration_ms or 0) >= 300
    assert found["/broken"].faults == ["broken"] and found["/broken"].status == 503
    bastion = engine.ctx.tunnels.get("jump")
    assert bastion is not None and bastion.connects == 1
