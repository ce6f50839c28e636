"""HTTP/2 over TLS on both sides, with real peers: `https://` targets reached with ALPN h2 (a
real h2 server over TLS, a wrong CA, a server without h2), a listener terminating TLS (curl,
grpcio with a root certificate), and HTTP/2 found on `http` services (prior knowledge, ALPN)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory
from tests.service import test_http2
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
    head, body, _ = await _call(client, "/x", port=port,
                                extra=[(b"x-devamb-target", target.encode())])
    return head, body


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


async def _curl(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "20", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


LISTENER_TLS = """
version: 1
services:
  h2:
    listen: 0
    protocol: {protocol}
    target: up
    timeout: 5s
    tls: {{cert: server.pem, key: server.key}}
    targets:
      up: http://127.0.0.1:{port}
"""


@needs_curl
@pytest.mark.parametrize("protocol", ["http2", "grpc"])
async def test_a_tls_listener_serves_curl_over_h2(
    make_engine: EngineFactory, certs: tuple[Path, Path, Path], protocol: str
) -> None:
    up = await H2Upstream("up").start()
    try:
        engine, port = await _engine(make_engine, LISTENER_TLS.format(protocol=protocol,
                                                                      port=up.port))
        ca = certs[0]
        code, out, err = await _curl("--http2", "--cacert", str(ca), "-w", "%{http_version}",
                                     f"https://127.0.0.1:{port}/size/200000")
        assert code == 0, err
        assert out == pattern(200000) + b"2"
        code, out, err = await _curl("--http2", "-k", f"https://127.0.0.1:{port}/x")
        assert code == 0 and out == b"up GET /x", err
        # without the CA, curl refuses the certificate: the listener's, not a plain one
        code, _, err = await _curl("--http2", f"https://127.0.0.1:{port}/x")
        assert code == 60, err
        records = await _records(engine, 2)
        assert [(r.path, r.status, r.protocol) for r in records] == [
            ("/size/200000", 200, protocol), ("/x", 200, protocol)]
    finally:
        await up.stop()


@pytest.fixture
def grpc_server() -> Iterator[int]:
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {
        "Ping": grpc.unary_unary_rpc_method_handler(test_http2._unary),
        "Count": grpc.unary_stream_rpc_method_handler(test_http2._stream),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


async def test_grpcio_through_a_tls_listener_with_a_root_certificate(
    make_engine: EngineFactory, certs: tuple[Path, Path, Path], grpc_server: int
) -> None:
    import grpc

    engine, port = await _engine(make_engine, LISTENER_TLS.format(protocol="grpc",
                                                                  port=grpc_server))
    root = certs[0].read_bytes()

    def calls() -> tuple[bytes, list[bytes]]:
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            reply = channel.unary_unary("/test.Echo/Ping")(b"over tls", timeout=10)
            items = list(channel.unary_stream("/test.Echo/Count")(b"3", timeout=10))
            return reply, items

    reply, items = await asyncio.to_thread(calls)
    assert reply == b"pong:over tls" and len(items) == 3
    records = await _records(engine, 2)
    assert [r.path for r in records] == ["/test.Echo/Ping", "/test.Echo/Count"]


HTTP_SERVICE = """
version: 1
services:
  h2:
    listen: 0
    target: up
    timeout: 5s
    {tls}
    targets:
      up: http://127.0.0.1:{port}
      old: http://127.0.0.1:{old}
"""


@needs_curl
async def test_an_http_service_serves_prior_knowledge_http2(
    make_engine: EngineFactory, upstream
) -> None:
    up = await H2Upstream("up").start()
    try:
        engine, port = await _engine(make_engine, HTTP_SERVICE.format(
            tls="", port=up.port, old=upstream.port))
        code, out, err = await _curl("--http2-prior-knowledge", "-w", "%{http_version}",
                                     f"http://127.0.0.1:{port}/size/100000")
        assert code == 0, err
        assert out == pattern(100000) + b"2"
        # many calls on one connection, each its own exchange
        client = H2Client("127.0.0.1", port, 5.0)
        try:
            heads = await asyncio.gather(*(_call(client, f"/n/{i}", port=port)
                                           for i in range(5)))
            assert {h[":status"] for h, _, _ in heads} == {"200"}
            # a target speaking only HTTP/1.1: a clean 502 on the stream
            head, body, _ = await _call_to(client, port, "old")
            assert head[":status"] == "502" and b"does not speak HTTP/2" in body, body
        finally:
            client.close()
        # HTTP/1.1 clients on the same listener go on as before (to the h2c upstream: 502)
        code, out, err = await _curl("--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                                     "-H", "X-Devamb-Target: old",
                                     f"http://127.0.0.1:{port}/plain")
        assert code == 0 and out == b"200", err
        records = await _records(engine, 8)
        assert [r.protocol for r in records] == ["http2"] * 7 + ["http"]
        assert records[0].path == "/size/100000" and records[0].bytes_out == 100000
    finally:
        await up.stop()


async def _call_to(client: H2Client, port: int, target: str) -> tuple[
        dict[str, str], bytes, None]:
    head, body = await _override(client, port, target)
    return head, body, None


@needs_curl
async def test_an_http_service_with_tls_serves_h2_and_http1_by_alpn(
    make_engine: EngineFactory, certs: tuple[Path, Path, Path], upstream
) -> None:
    up = await H2Upstream("up").start()
    try:
        engine, port = await _engine(make_engine, HTTP_SERVICE.format(
            tls="tls: {cert: server.pem, key: server.key}", port=up.port, old=upstream.port))
        ca = str(certs[0])
        code, out, err = await _curl("--http2", "--cacert", ca, "-w", "%{http_version}",
                                     f"https://127.0.0.1:{port}/x")
        assert code == 0, err
        assert out == b"up GET /x2"
        code, out, err = await _curl("--http1.1", "--cacert", ca, "-w", " %{http_version}",
                                     "-H", "X-Devamb-Target: old",
                                     f"https://127.0.0.1:{port}/plain")
        assert code == 0, err
        assert out.endswith(b" 1.1") and b'"upstream": "up"' in out, out
        records = await _records(engine, 2)
        assert [(r.protocol, r.target) for r in records] == [("http2", "up"), ("http", "old")]
    finally:
        await up.stop()


def test_listener_tls_files_are_checked_at_load(
    tmp_path: Path, certs: tuple[Path, Path, Path]
) -> None:
    from tests.conftest import problems

    (tmp_path / "other").mkdir()
    certificates(tmp_path / "other")  # another key, which does not match server.pem
    found = problems(tmp_path, """version: 1
services:
  a:
    listen: 0
    tls: {cert: missing.pem, key: server.key}
    targets: {up: 'http://127.0.0.1:1'}
  b:
    listen: 0
    protocol: grpc
    tls: {cert: server.pem, key: other/server.key}
    targets: {up: 'http://127.0.0.1:1'}
  c:
    listen: 0
    protocol: tcp
    tls: {cert: server.pem, key: server.key}
    targets: {up: 'tcp://127.0.0.1:1'}
  d:
    listen: 0
    tls: {cert: server.pem}
    targets: {up: 'http://127.0.0.1:1'}
""")
    assert found == [
        "devamb.yaml:5:17: services.a.tls.cert: cannot read certificate file 'missing.pem': "
        "No such file or directory",
        "devamb.yaml:10:34: services.b.tls.key: key 'other/server.key' does not match "
        "certificate 'server.pem'",
        "devamb.yaml:15:5: services.c.tls: 'tls' applies to http, http2, grpc services; a tcp "
        "service relays bytes (TLS goes through it untouched)",
        "devamb.yaml:19:10: services.d.tls: missing required key 'key'",
    ], found


def test_under_uvloop_tls_both_sides_and_sniffing_work(
    tmp_path: Path, certs: tuple[Path, Path, Path]
) -> None:
    """`devamb up` runs on uvloop, whose TLS transports and set_protocol are its own: an http
    service with tls (ALPN h2 and http/1.1, and HTTP/1.1 after a sniff) and an https target."""
    uvloop = pytest.importorskip("uvloop")
    import ssl

    from devamb.engine.assembly import load_profile
    from devamb.engine.core import Engine as EngineClass

    async def main() -> None:
        up = await _tls_upstream(certs, "secure")
        path = tmp_path / "devamb.yaml"
        path.write_text(f"""
version: 1
services:
  h2:
    listen: 0
    tls: {{cert: server.pem, key: server.key}}
    targets:
      secure: {{url: 'https://127.0.0.1:{up.port}', tls: {{ca: ca.pem}}}}
  plain:
    listen: 0
    targets:
      secure: {{url: 'https://127.0.0.1:{up.port}', tls: {{ca: ca.pem}}}}
""")
        engine = EngineClass(load_profile(path))
        await engine.start()
        try:
            for name, tls in (("h2", True), ("plain", False)):
                bound = engine.services[name].bound
                assert bound is not None
                context = None
                if tls:
                    context = ssl.create_default_context(cafile=str(certs[0]))
                    context.set_alpn_protocols(["h2"])
                client = H2Client("127.0.0.1", bound[1], 5.0, context, "127.0.0.1")
                try:
                    results = await asyncio.gather(*(
                        _call(client, f"/size/{1000 * i}", port=bound[1]) for i in range(1, 21)
                    ))
                finally:
                    client.close()
                assert [r[1] for r in results] == [pattern(1000 * i) for i in range(1, 21)]
            # HTTP/1.1 over the same TLS listener (ALPN http/1.1) reaches the upstream too,
            # here as HTTP/1.1 to an h2-only server: the answer is devamb's error, in HTTP/1.1
            bound = engine.services["h2"].bound
            assert bound is not None
            context = ssl.create_default_context(cafile=str(certs[0]))
            context.set_alpn_protocols(["http/1.1"])
            reader, writer = await asyncio.open_connection("127.0.0.1", bound[1], ssl=context)
            writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 "), answer[:100]
        finally:
            await engine.stop()
            await up.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def test_the_preface_in_pieces_is_http2_and_a_broken_one_is_http1(
    make_engine: EngineFactory, upstream
) -> None:
    """The preface is recognised however it arrives; bytes that leave it on the way are
    HTTP/1.1 (a broken preface gets HTTP/1.1's answer, a 400 that says so)."""
    _, port = await _engine(make_engine, HTTP_SERVICE.format(tls="", port=upstream.port,
                                                             old=upstream.port))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in PREFACE_PARTS:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        head = await asyncio.wait_for(reader.readexactly(9), 10)
        assert head[3] == 0x4 and head[5:9] == b"\0\0\0\0"  # the server's SETTINGS frame
    finally:
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
        assert b"Expected HTTP/2 Connection Preface" in answer, answer
    finally:
        writer.close()


PREFACE_PARTS = [b"P", b"RI * HTTP", b"/2.0\r\n\r\nSM\r", b"\n\r\n", b"\0\0\0\x04\0\0\0\0\0"]


async def test_a_grpc_channel_on_an_http_service_is_served_as_http2(
    make_engine: EngineFactory, grpc_server: int, upstream
) -> None:
    """gRPC's insecure channels speak h2c with prior knowledge: an http service relays their
    calls to an h2c upstream, one exchange each, as an http2 service would."""
    import grpc

    engine, port = await _engine(make_engine, HTTP_SERVICE.format(tls="", port=grpc_server,
                                                                  old=upstream.port))

    def calls() -> tuple[bytes, grpc.StatusCode]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply, call = channel.unary_unary("/test.Echo/Ping").with_call(b"hi", timeout=10)
            return reply, call.code()

    reply, code = await asyncio.to_thread(calls)
    assert reply == b"pong:hi" and code == grpc.StatusCode.OK
    (record,) = await _records(engine, 1)
    assert (record.protocol, record.path, record.status) == ("http2", "/test.Echo/Ping", 200)
    assert ("grpc-status", "0") in record.notes["http2"]["trailers"]


async def test_the_state_of_an_https_target_says_when_its_certificate_fails(
    make_engine: EngineFactory, tls_up: H2Upstream, certs: tuple[Path, Path, Path]
) -> None:
    engine, _ = await _engine(make_engine, UPSTREAM_TLS.format(
        protocol="grpc", port=tls_up.port, plain=tls_up.port))
    targets = engine.services["h2"].targets
    for name in ("secure", "system"):
        probe = targets[name].refresh()
        if probe is not None:
            await probe
    assert targets["secure"].state == "reachable"
    assert targets["system"].state == "tls-failure"


async def test_an_http_services_faults_and_retries_act_on_its_http2_calls(
    make_engine: EngineFactory,
) -> None:
    """The HTTP/2 calls an http service finds are calls like its HTTP/1.1 ones: its faults
    (with the http service's settings) and its retries act on each."""
    up = await H2Upstream("up").start()
    try:
        engine, port = await _engine(make_engine, f"""
            version: 1
            services:
              h2:
                listen: 0
                target: up
                timeout: 5s
                retries: {{attempts: 3, on: [reset], backoff: 1ms}}
                targets:
                  up: http://127.0.0.1:{up.port}
                faults:
                  boom: {{kind: abort, status: 503, times: 1, match: {{path: /boom}}}}
            """)
        client = H2Client("127.0.0.1", port, 5.0)
        try:
            head, _, _ = await _call(client, "/boom", port=port)
            assert head[":status"] == "503"  # the fault, once
            head, body, _ = await _call(client, "/boom", port=port)
            assert head[":status"] == "200" and body == b"up GET /boom"
            stream = await client.open([(b":method", b"GET"), (b":scheme", b"http"),
                                        (b":authority", b"x"), (b":path", b"/reset")], end=True)
            assert (await stream.next()).kind == "reset"  # every try was reset
        finally:
            client.close()
        records = await _records(engine, 3)
        assert [r.protocol for r in records] == ["http2"] * 3
        assert records[0].faults == ["boom"] and records[1].faults == []
        assert records[2].attempts == 3 and up.paths.count("/reset") == 3
    finally:
        await up.stop()
