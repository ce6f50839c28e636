"""The http2 service (h2c, prior knowledge) with real clients (curl, grpcio, an h2 client)
and real upstreams (tests/upstreams_h2.py, a grpcio server): one exchange per stream."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent import futures

import grpc
import pytest

from devamb.engine.core import Engine
from devamb.proxy.h2conn import H2Stream
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory
from tests.upstreams_h2 import H2Upstream, pattern

PROFILE = """
version: 1
services:
  h2:
    listen: 0
    protocol: http2
    target: up
    timeout: 5s
    targets:
      up: http://127.0.0.1:{port}
      other: http://127.0.0.1:{port2}
      dead: http://127.0.0.1:{dead}
"""

curl_h2 = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _dead_port() -> int:
    from tests.conftest import free_port

    return free_port()


@pytest.fixture
async def h2(make_engine: EngineFactory) -> AsyncIterator[tuple[Engine, int, H2Upstream,
                                                                 H2Upstream]]:
    up = await H2Upstream("up").start()
    other = await H2Upstream("other").start()
    engine = await make_engine(PROFILE.format(port=up.port, port2=other.port, dead=_dead_port()))
    bound = engine.services["h2"].bound
    assert bound is not None
    yield engine, bound[1], up, other
    await up.stop()
    await other.stop()


async def _curl(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--http2-prior-knowledge", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def _records(engine: Engine, count: int) -> list:
    for _ in range(200):
        found = engine.store.recent(count)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return engine.store.recent(count)


async def _call(client: H2Client, path: str, body: bytes = b"", port: int = 0,
                extra: list[tuple[bytes, bytes]] | None = None) -> tuple[
        dict[str, str], bytes, dict[str, str]]:
    """One request on a shared client connection (with `extra` headers): (headers, body,
    trailers)."""
    headers = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"http"),
               (b":authority", f"127.0.0.1:{port}".encode()), (b":path", path.encode()),
               *(extra or [])]
    stream = await client.open(headers, end=not body)
    if body:
        await stream.send_data(body, end=True)
    return await read_answer(stream)


async def read_answer(stream: H2Stream) -> tuple[dict[str, str], bytes, dict[str, str]]:
    """A stream's answer read to its end, its data acknowledged: (headers, body, trailers)."""
    got: dict[str, str] = {}
    trailers: dict[str, str] = {}
    data = bytearray()
    while True:
        item = await stream.next()
        if item.kind == "headers":
            got = {k.decode(): v.decode() for k, v in item.headers}
        elif item.kind == "data":
            data += item.data
            stream.ack(item.flow)
        elif item.kind == "trailers":
            trailers = {k.decode(): v.decode() for k, v in item.headers}
        elif item.kind == "end":
            return got, bytes(data), trailers
        else:
            raise AssertionError(f"stream reset: {item}")


@curl_h2
async def test_curl_get_and_post_byte_exact(h2) -> None:
    engine, port, _, _ = h2
    code, out, err = await _curl(f"http://127.0.0.1:{port}/size/300000")
    assert code == 0, err
    assert out == pattern(300000)
    body = pattern(200000)[::-1]
    code, out, err = await _curl("--data-binary", "@-", f"http://127.0.0.1:{port}/echo",
                                 "-D", "/dev/stderr") if False else await _curl_post(port, body)
    assert code == 0, err
    assert out == body
    records = await _records(engine, 2)
    first, newest = records  # oldest first
    assert (first.method, first.path, first.status, first.target) == ("GET", "/size/300000",
                                                                     200, "up")
    assert first.bytes_out == 300000 and first.protocol == "http2"
    assert (newest.method, newest.path, newest.status) == ("POST", "/echo", 200)
    assert newest.bytes_in == len(body) == newest.bytes_out
    assert newest.notes["http2"]["trailers"] == [("x-end", "done")]
    assert newest.ttfb_ms is not None and newest.duration_ms is not None
    assert ("x-upstream", "up") in (newest.response_headers or [])


async def _curl_post(port: int, body: bytes) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@-",
        f"http://127.0.0.1:{port}/echo",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(body)
    return proc.returncode or 0, out, err


async def test_streams_multiplex_over_one_connection_with_trailers(h2) -> None:
    engine, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        bodies = [hashlib.sha256(str(i).encode()).digest() * (50 + i * 37) for i in range(100)]
        results = await asyncio.gather(*(_call(client, "/echo", b, port) for b in bodies))
    finally:
        client.close()
    for body, (headers, data, trailers) in zip(bodies, results, strict=True):
        assert headers[":status"] == "200"
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(body).hexdigest()
        assert headers["x-sha256"] == hashlib.sha256(body).hexdigest()
        assert trailers == {"x-end": "done"}
    records = await _records(engine, 100)
    assert len(records) == 100
    assert all(r.path == "/echo" and r.status == 200 for r in records)
    assert up.connections == 1  # one upstream connection, multiplexed


async def test_dead_upstream_gives_502_and_a_record_then_serving_goes_on(h2) -> None:
    engine, port, _, _ = h2
    await engine.switch("h2", "dead")
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        headers, data, _ = await _call(client, "/x", port=port)
        assert headers[":status"] == "502"
        assert b"cannot connect" in data
        await engine.switch("h2", "up")
        headers, data, _ = await _call(client, "/y", port=port)
        assert headers[":status"] == "200" and data == b"up GET /y"
    finally:
        client.close()
    records = await _records(engine, 2)
    dead = records[0]
    assert (dead.target, dead.status, dead.path) == ("dead", 502, "/x")
    assert dead.error is not None and "cannot connect" in dead.error


async def test_switch_applies_to_the_next_stream(h2) -> None:
    engine, port, up, other = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        _, first, _ = await _call(client, "/a", port=port)
        await engine.switch("h2", "other")
        _, second, _ = await _call(client, "/b", port=port)
    finally:
        client.close()
    assert first == b"up GET /a" and second == b"other GET /b"
    assert up.paths == ["/a"] and other.paths == ["/b"]
    records = await _records(engine, 2)
    assert [r.target for r in records] == ["up", "other"]


# -- gRPC ----------------------------------------------------------------------------------------


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"pong:" + request


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield pattern(1000 + i * 997)


def _sum(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    digest = hashlib.sha256()
    for request in requests:
        digest.update(request)
    return digest.hexdigest().encode()


def _chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield request[::-1]


@pytest.fixture
def grpc_server() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Ping": grpc.unary_unary_rpc_method_handler(_unary),
        "Count": grpc.unary_stream_rpc_method_handler(_stream),
        "Sum": grpc.stream_unary_rpc_method_handler(_sum),
        "Chat": grpc.stream_stream_rpc_method_handler(_chat),
    })
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


async def test_grpc_unary_and_server_streaming(make_engine: EngineFactory,
                                               grpc_server: int) -> None:
    engine = await make_engine(PROFILE.format(port=grpc_server, port2=grpc_server,
                                              dead=_dead_port()))
    bound = engine.services["h2"].bound
    assert bound is not None

    def calls() -> tuple[bytes, list[bytes], grpc.StatusCode]:
        with grpc.insecure_channel(f"127.0.0.1:{bound[1]}") as channel:
            ping = channel.unary_unary("/test.Echo/Ping")
            reply, call = ping.with_call(b"hello", timeout=10)
            count = channel.unary_stream("/test.Echo/Count")
            items = list(count(b"20", timeout=10))
            return reply, items, call.code()

    reply, items, code = await asyncio.to_thread(calls)
    assert reply == b"pong:hello" and code == grpc.StatusCode.OK
    assert items == [pattern(1000 + i * 997) for i in range(20)]
    records = await _records(engine, 2)
    unary, streaming = records
    assert (unary.method, unary.path, unary.status) == ("POST", "/test.Echo/Ping", 200)
    assert ("grpc-status", "0") in unary.notes["http2"]["trailers"]
    assert streaming.path == "/test.Echo/Count"
    assert ("grpc-status", "0") in streaming.notes["http2"]["trailers"]
    assert streaming.bytes_out == sum(5 + 1000 + i * 997 for i in range(20))


async def test_client_reset_after_whole_request_reaches_upstream(h2) -> None:
    """A request that ended with its headers has no task reading the client's stream: its
    reset still reaches the upstream and the record."""
    engine, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", b"/slow")]
        stream = await client.open(headers, end=True)
        for _ in range(200):  # the upstream holds the call
            if "/slow" in up.paths:
                break
            await asyncio.sleep(0.02)
        stream.reset(8)  # CANCEL
        for _ in range(200):
            if up.resets:
                break
            await asyncio.sleep(0.02)
        assert up.resets == [8]
        _, data, _ = await _call(client, "/after", port=port)  # the connection still serves
        assert data == b"up GET /after"
    finally:
        client.close()
    records = await _records(engine, 2)
    slow = next(r for r in records if r.path == "/slow")
    assert slow.error is not None and "client reset the stream (code 8)" in slow.error


async def test_resets_pass_both_ways(h2) -> None:
    engine, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", b"/reset")]
        stream = await client.open(headers, end=True)
        item = await stream.next()
        assert (item.kind, item.code, item.lost) == ("reset", 11, False)
        posting = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", b"/echo")]
        stream = await client.open(posting, end=False)
        await stream.send_data(b"part of a body")
        for _ in range(200):  # the upstream took the part: the relay's stream is open there
            if up.connections and any(c.bodies for c in up.open):
                break
            await asyncio.sleep(0.02)
        stream.reset(8)  # CANCEL
        for _ in range(200):
            if up.resets:
                break
            await asyncio.sleep(0.02)
        assert up.resets == [8]
        _, data, _ = await _call(client, "/after", port=port)  # the connection still serves
        assert data == b"up GET /after"
    finally:
        client.close()
    records = await _records(engine, 3)
    assert records[0].error == "the upstream reset the stream (code 11)"
    assert records[1].error is not None and "client reset the stream" in records[1].error
    assert records[2].status == 200


async def test_a_client_that_stops_reading_stalls_the_upstream(h2) -> None:
    """Flow control end to end: devamb acknowledges the upstream's data only as the client
    takes it, so a client that never reads leaves the upstream waiting on its window."""
    _, port, up, _ = h2
    size = 4_000_000
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", f"/size/{size}".encode())]
        stream = await client.open(headers, end=True)
        await asyncio.sleep(0.5)  # time for the upstream to fill every window on the way
        conn = next(iter(up.open))
        assert conn.pending  # it could not send the whole body: nobody read it
        left = len(next(iter(conn.pending.values()))[0])
        assert left > size - 1_000_000  # what is in flight is bounded by the windows
        data = bytearray()
        while True:
            item = await stream.next()
            if item.kind == "data":
                data += item.data
                stream.ack(item.flow)
            elif item.kind == "end":
                break
            else:
                assert item.kind == "headers", item
        assert bytes(data) == pattern(size)
    finally:
        client.close()


async def test_a_client_not_speaking_http2_is_sent_away_and_others_go_on(h2) -> None:
    _, port, _, _ = h2
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await reader.read()  # devamb's SETTINGS, then GOAWAY, then the close
    assert answer[3:4] == b"\x04"  # a SETTINGS frame first
    assert b"\x07" in answer  # a GOAWAY frame type among the frames
    writer.close()
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        _, data, _ = await _call(client, "/ok", port=port)
        assert data == b"up GET /ok"
    finally:
        client.close()


def test_what_http2_cannot_do_is_refused_at_load(tmp_path) -> None:
    from tests.conftest import problems

    found = problems(tmp_path, """
        version: 1
        services:
          h2:
            listen: 0
            protocol: http2
            target: up
            targets:
              up: http://127.0.0.1:1
              tls: tcp://127.0.0.1:2
              loop: {split: {up: 1}, mirror: up}
            faults:
              slow: {kind: latency, delay: 1s}
              broken: {kind: malformed}
        """)
    assert any("h2.targets.tls" in p and "http:// is h2c" in p for p in found), found
    assert any("h2.targets.loop.mirror" in p and "mirroring" in p for p in found), found
    assert not any("h2.faults.slow" in p for p in found), found  # faults per call: h2_faults
    assert any("h2.faults.broken.kind" in p and "apply to http services only" in p
               for p in found), found


async def test_a_slow_stream_does_not_hold_the_others(h2) -> None:
    _, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        slow = asyncio.create_task(_call(client, "/slow", port=port))
        for _ in range(200):
            if "/slow" in up.paths:
                break
            await asyncio.sleep(0.02)
        results = await asyncio.gather(*(_call(client, f"/fast/{i}", port=port)
                                         for i in range(20)))
        assert [r[1] for r in results] == [f"up GET /fast/{i}".encode() for i in range(20)]
        assert not slow.done()
        up.gate.set()
        _, data, _ = await slow
        assert data == b"slow"
    finally:
        client.close()


async def test_a_dead_upstream_connection_is_opened_again(h2) -> None:
    engine, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        _, data, _ = await _call(client, "/one", port=port)
        assert data == b"up GET /one" and up.connections == 1
        for conn in list(up.open):
            assert conn.transport is not None
            conn.transport.close()
        listener = engine.lifecycle.listeners["h2"]
        upstreams = listener._upstreams.values()  # type: ignore[union-attr]
        for _ in range(200):  # devamb saw the close
            if all(u._connection is None or not u._connection.usable for u in upstreams):
                break
            await asyncio.sleep(0.02)
        _, data, _ = await _call(client, "/two", port=port)
        assert data == b"up GET /two" and up.connections == 2
    finally:
        client.close()


def test_header_faults_are_accepted_on_http2(tmp_path) -> None:
    from devamb.engine.assembly import load_profile

    path = tmp_path / "devamb.yaml"
    path.write_text("""
        version: 1
        services:
          h2:
            listen: 0
            protocol: http2
            header_faults: true
            targets:
              up: http://127.0.0.1:1
        """)
    # their effect: tests/service/test_http2_faults.py
    assert load_profile(path, environ={}).services["h2"].header_faults


async def test_the_summary_of_a_stream_has_method_path_and_status(h2) -> None:
    engine, port, _, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        await _call(client, "/summary", port=port)
    finally:
        client.close()
    summary = (await engine.exchanges(1))[0]
    assert (summary["protocol"], summary["method"], summary["path"], summary["status"]) == (
        "http2", "GET", "/summary", 200)


async def test_grpc_client_streaming_and_bidi(make_engine: EngineFactory,
                                              grpc_server: int) -> None:
    engine = await make_engine(PROFILE.format(port=grpc_server, port2=grpc_server,
                                              dead=_dead_port()))
    bound = engine.services["h2"].bound
    assert bound is not None
    chunks = [pattern(70_000 + i) for i in range(30)]  # more than a stream window in all

    def calls() -> tuple[bytes, list[bytes]]:
        with grpc.insecure_channel(f"127.0.0.1:{bound[1]}") as channel:
            total = channel.stream_unary("/test.Echo/Sum")(iter(chunks), timeout=20)
            chat = channel.stream_stream("/test.Echo/Chat")
            return total, list(chat(iter(chunks), timeout=20))

    total, replies = await asyncio.to_thread(calls)
    assert total == hashlib.sha256(b"".join(chunks)).hexdigest().encode()
    assert replies == [c[::-1] for c in chunks]
    records = await _records(engine, 2)
    assert [r.path for r in records] == ["/test.Echo/Sum", "/test.Echo/Chat"]
    assert all(r.bytes_in == sum(5 + len(c) for c in chunks) for r in records)


def test_under_uvloop_as_devamb_up_runs_it(tmp_path) -> None:
    """`devamb up` runs the engine on uvloop, whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")
    from devamb.engine.assembly import load_profile

    async def main() -> None:
        up = await H2Upstream("up").start()
        path = tmp_path / "devamb.yaml"
        path.write_text(PROFILE.format(port=up.port, port2=up.port, dead=_dead_port()))
        engine = Engine(load_profile(path))
        await engine.start()
        try:
            bound = engine.services["h2"].bound
            assert bound is not None
            client = H2Client("127.0.0.1", bound[1], 5.0)
            try:
                results = await asyncio.gather(*(
                    _call(client, f"/size/{1000 * i}", port=bound[1]) for i in range(1, 101)
                ))
            finally:
                client.close()
            assert [r[1] for r in results] == [pattern(1000 * i) for i in range(1, 101)]
        finally:
            await engine.stop()
            await up.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


@curl_h2
async def test_export_curl_of_a_stream_runs_again_through_devamb(h2) -> None:
    engine, port, _, _ = h2
    code, out, err = await _curl_post(port, b"again")
    assert code == 0 and out == b"again", err
    record = (await _records(engine, 1))[0]
    command = await engine.export_curl(record.id)
    assert "--http2-prior-knowledge" in command and ":method" not in command
    proc = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0 and out == b"again", err


async def test_an_answer_before_the_request_ended_closes_both_streams(h2) -> None:
    """The upstream answered while the client was still sending: devamb stops the upstream's
    stream (CANCEL) and asks the client to stop (RST_STREAM NO_ERROR), so neither connection
    keeps the stream open."""
    engine, port, up, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", b"/early")]
        stream = await client.open(headers, end=False)
        await stream.send_data(b"first part")
        kinds = []
        while True:
            item = await stream.next()
            kinds.append((item.kind, item.data))
            if item.kind == "reset":
                assert item.code == 0
                break
        assert kinds == [("headers", b""), ("data", b"early"), ("end", b""), ("reset", b"")]
        for _ in range(200):
            if up.resets:
                break
            await asyncio.sleep(0.02)
        assert up.resets == [8]
        assert not client._connection.streams  # type: ignore[union-attr]
        _, data, _ = await _call(client, "/next", port=port)
        assert data == b"up GET /next"
    finally:
        client.close()
    record = (await _records(engine, 2))[0]
    assert (record.path, record.status, record.error) == ("/early", 200, None)


async def test_target_headers_replace_the_clients(make_engine: EngineFactory) -> None:
    up = await H2Upstream("up").start()
    try:
        engine = await make_engine(f"""
            version: 1
            services:
              h2:
                listen: 0
                protocol: http2
                targets:
                  up:
                    url: http://user:secret@127.0.0.1:{up.port}
                    headers: {{X-Team: payments}}
            """)
        bound = engine.services["h2"].bound
        assert bound is not None
        client = H2Client("127.0.0.1", bound[1], 5.0)
        try:
            headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"),
                       (b":path", b"/h"), (b"x-team", b"other"), (b"authorization", b"Bearer t")]
            stream = await client.open(headers, end=True)
            while (await stream.next()).kind != "end":
                pass
        finally:
            client.close()
        record = (await _records(engine, 1))[0]
        sent = record.request_headers or []
        assert [v for k, v in sent if k == "x-team"] == ["payments"]
        assert [v for k, v in sent if k == "authorization"] == ["Basic dXNlcjpzZWNyZXQ="]
        assert (":authority", f"127.0.0.1:{up.port}") in sent
    finally:
        await up.stop()


async def test_x_devamb_target_picks_the_target_per_call(h2) -> None:
    engine, port, _, _ = h2
    client = H2Client("127.0.0.1", port, 5)
    try:
        headers = [(b":method", b"GET"), (b":scheme", b"http"),
                   (b":authority", f"127.0.0.1:{port}".encode()), (b":path", b"/who"),
                   (b"x-devamb-target", b"other")]
        stream = await client.open(headers, end=True)
        got = (await stream.next()).headers
        assert (b"x-upstream", b"other") in got
        unknown = [*headers[:4], (b"x-devamb-target", b"nowhere")]
        stream = await client.open(unknown, end=True)
        first = await stream.next()
        assert (b":status", b"400") in first.headers
        got_plain, _, _ = await _call(client, "/who", port=port)
        assert got_plain["x-upstream"] == "up"
    finally:
        client.close()
    records = await _records(engine, 3)
    assert [r.target for r in records] == ["other", "nowhere", "up"]
    assert [r.status for r in records][1] == 400
    assert all(k != "x-devamb-target" for k, _ in records[0].request_headers or [])


async def test_the_upstream_stream_is_forgotten_once_its_answer_passed_on(h2) -> None:
    """The relay's try forgets its upstream stream after the answer's last write (no settle
    is scheduled by the answer's end): after each call, devamb's table of the upstream
    connection's streams is empty, and h2's own drops the stream after the next write."""
    engine, port, _, _ = h2
    client = H2Client("127.0.0.1", port, 5.0)
    try:
        listener = engine.lifecycle.listeners["h2"]
        for path in ("/one", "/two", "/three"):
            _, data, _ = await _call(client, path, port=port)
            assert data == b"up GET " + path.encode()
            (upstream,) = listener._upstreams.values()  # type: ignore[union-attr]
            connection = upstream._connection
            assert connection is not None
            for _ in range(200):  # (the record is written after the client's answer)
                if not connection.streams:
                    break
                await asyncio.sleep(0.01)
            assert not connection.streams
        assert len(connection.conn.streams) <= 1  # (the last one: dropped after a write)
    finally:
        client.close()
