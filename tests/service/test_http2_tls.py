"""HTTP/2 over TLS on both sides, with real peers: `https://` targets reached with ALPN h2 (a
real h2 server over TLS, a wrong CA, a server without h2), a listener terminating TLS (curl,
grpcio with a root certificate), and HTTP/2 found on `http` services (prior knowledge, ALPN)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory
from tests.service.test_http2 import _call, _records
from tests.upstreams_h2 import H2Upstream, pattern, server_tls

pytest.importorskip("cryptography")
from tests.certs import certificates

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA, server certificate, key) in tmp_path, beside the profile."""
    return certificates(tmp_path)


async def _engine(make_engine: EngineFactory, text: str) -> tuple[Engine, int]:
    engine = await make_engine(text)
    bound = engine.services["h2"].bound
    assert bound is not None
    return engine, bound[1]


async def _tls_upstream(certs: tuple[Path, Path, Path], name: str,
                        alpn: tuple[str, ...] = ("h2",)) -> H2Upstream:
    _, cert, key = certs
    return await H2Upstream(name).start(tls=server_tls(cert, key, alpn))


@pytest.fixture
async def tls_up(certs: tuple[Path, Path, Path]) -> AsyncIterator[H2Upstream]:
    up = await _tls_upstream(certs, "secure")
    yield up
    await up.stop()


UPSTREAM_TLS = """
version: 1
services:
  h2:
    listen: 0
    protocol: {protocol}
    target: secure
    timeout: 5s
    targets:
      secure: {{url: 'https://127.0.0.1:{port}', tls: {{ca: ca.pem}}}}
      unverified: {{url: 'https://127.0.0.1:{port}', tls: {{verify: false}}}}
      system: https://127.0.0.1:{port}
      plain: {{url: 'https://127.0.0.1:{plain}', tls: {{ca: ca.pem}}}}
"""


async def test_https_target_speaks_h2_over_tls_with_the_profiles_ca(
    make_engine: EngineFactory, tls_up: H2Upstream, certs: tuple[Path, Path, Path]
) -> None:
    plain = await _tls_upstream(certs, "plain", alpn=("http/1.1",))
    try:
        engine, port = await _engine(make_engine, UPSTREAM_TLS.format(
            protocol="http2", port=tls_up.port, plain=plain.port))
        client = H2Client("127.0.0.1", port, 5.0)
        try:
            head, body, trailers = await _call(client, "/echo", pattern(100000), port)
            assert head[":status"] == "200" and head["x-upstream"] == "secure"
            assert body == pattern(100000) and trailers == {"x-end": "done"}
            # a wrong CA (the system store does not know the test CA): 502 naming the cause
            head, body = await _override(client, port, "system")
            assert head[":status"] == "502"
            assert b"certificate failed verification" in body, body
            # verify: false accepts it
            head, body = await _override(client, port, "unverified")
            assert head[":status"] == "200" and body.startswith(b"secure GET")
            # a TLS server that does not select h2 in ALPN
            head, body = await _override(client, port, "plain")
            assert head[":status"] == "502"
            assert b"did not select h2 in ALPN (it chose no protocol)" in body, body
        finally:
            client.close()
        records = await _records(engine, 4)
        assert records[0].url == f"https://127.0.0.1:{tls_up.port}/echo"
        assert [r.status for r in records] == [200, 502, 200, 502]
        assert "certificate failed verification" in (records[1].error or "")
        assert tls_up.connections == 2  # secure and unverified: one connection each
    finally:
        await plain.stop()


async def _override(client: H2Client, port: int, target: str) -> tuple[dict[str, str], bytes]:
    headers = [(b":method", b"GET"), (b":scheme", b"http"),
               (b":authority", f"127.0.0.1:{port}".encode()), (b":path", b"/x"),
               (b"x-devamb-target", target.encode())]
    stream = await client.open(headers, end=True)
    got: dict[str, str] = {}
    data = bytearray()
    while True:
        item = await stream.next()
        if item.kind == "headers":
            got = {k.decode(): v.decode() for k, v in item.headers}
        elif item.kind == "data":
            data += item.data
            stream.ack(item.flow)
        elif item.kind == "end":
            return got, bytes(data)
        else:
            raise AssertionError(f"stream reset: {item}")


async def test_an_h2c_target_that_speaks_http1_gives_a_clean_502(
    make_engine: EngineFactory, upstream
) -> None:
    """An HTTP/1.1-only upstream answers h2c's preface with HTTP/1.1: the call gets a 502 that
    says the upstream does not speak HTTP/2, and the listener goes on."""
    _, port = await _engine(make_engine, f"""
        version: 1
        services:
          h2:
            listen: 0
            protocol: http2
            target: old
            timeout: 5s
            targets:
              old: http://127.0.0.1:{upstream.port}
        """)
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        for _ in range(2):
            head, body, _ = await _call(client, "/x", port=port)
            assert head[":status"] == "502"
            assert b"the upstream does not speak HTTP/2" in body, body
    finally:
        client.close()
