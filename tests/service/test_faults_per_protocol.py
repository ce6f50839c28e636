"""Every fault kind on every protocol: it has its effect, or it is refused and says why.

On real sockets: a TCP relay to a real TCP server, a sharded Redis target over real
redis-server processes, and WebSockets through the HTTP listener to a real aiohttp WebSocket
server. Effects are asserted with generous bounds (time taken at least, bytes cut, a reset),
never with upper time limits. The table these tests hold is docs/faults.md, "Where each fault
applies"; the refusals are data on the fault kinds (devamb/faults/applies.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from devamb.control.protocol import ControlError
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.inspect.har import to_har
from devamb.targets.shards import encoder
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import RedisServer, redis_servers
from tests.upstreams import TcpUpstream, echo_bytes, serve_app, ws_echo

LAG = 0.2  # seconds of latency per chunk or message
SLACK = 0.85  # a lower bound is this share of the ideal time (timers round, clocks differ)
READ_TIMEOUT = 15.0


# -- the peers -----------------------------------------------------------------------------------


async def _say_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"goodbye\n")
    await writer.drain()
    writer.close()


async def _ws_bye(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("bye")
    await ws.close(code=1000, message=b"done")
    return ws


@dataclass
class Peers:
    echo: TcpUpstream
    talker: TcpUpstream
    ws_port: int
    redis: list[RedisServer]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_servers(tmp_path_factory.mktemp("redis"), 2) as servers:
        yield servers


@pytest.fixture
async def peers(redis: list[RedisServer]) -> AsyncIterator[Peers]:
    echo = await TcpUpstream(echo_bytes).start()
    talker = await TcpUpstream(_say_and_close).start()
    app = web.Application()
    app.router.add_get("/echo", ws_echo())
    app.router.add_get("/bye", _ws_bye)
    runner, ws_port = await serve_app(app, shutdown_timeout=0.5)
    yield Peers(echo, talker, ws_port, redis)
    await runner.cleanup()
    await echo.stop()
    await talker.stop()


PROFILE = """
version: 1
services:
  raw:
    listen: 0
    protocol: tcp
    timeout: 5s
    targets: {{echo: "tcp://127.0.0.1:{echo}"}}
  talk:
    listen: 0
    protocol: tcp
    timeout: 5s
    targets: {{talker: "tcp://127.0.0.1:{talker}"}}
  cache:
    listen: 0
    protocol: tcp
    timeout: 5s
    targets:
      sharded: {{shards: [{shards}], key: redis}}
  web:
    listen: 0
    timeout: 5s
    targets: {{up: "http://127.0.0.1:{ws}"}}
"""


@dataclass
class Setup:
    engine: Engine

    def port(self, service: str) -> int:
        return self.engine.services[service].bound[1]  # type: ignore[index]

    async def add(self, service: str, **fault: Any) -> dict[str, Any]:
        return await self.engine.add_fault(service, {"name": "f", **fault})

    async def record(self, service: str, timeout: float = 10.0) -> dict[str, Any]:
        """The last finished exchange of `service`, as the control API details it."""
        deadline = time.monotonic() + timeout
        while True:
            done = [e for e in self.engine.store.recent(50)
                    if e.service == service and e.duration_ms is not None]
            if done:
                return await self.engine.exchange(done[-1].id)
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished exchange on {service}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def setup(make_engine: EngineFactory, peers: Peers) -> Setup:
    shards = ", ".join(f'"{s.url}"' for s in peers.redis)
    engine = await make_engine(PROFILE.format(echo=peers.echo.port, talker=peers.talker.port,
                                              shards=shards, ws=peers.ws_port))
    return Setup(engine)


# -- raw clients ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    data: bytes
    reset: bool  # the connection ended with a reset, not a clean close
    seconds: float


async def converse(port: int, send: bytes = b"", *, until: int | None = None) -> Outcome:
    """Send `send`, then read until EOF, a reset, or `until` bytes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data, was_reset = b"", False
    try:
        if send:
            writer.write(send)
            await writer.drain()
        async with asyncio.timeout(READ_TIMEOUT):
            while until is None or len(data) < until:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
    except ConnectionResetError:
        was_reset = True
    finally:
        writer.close()
    return Outcome(data, was_reset, time.monotonic() - started)


async def round_trips(port: int, messages: list[bytes], answer: int | None = None) -> float:
    """Seconds taken by request/answer turns, one after another (`answer`: bytes per answer,
    else as many as sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        for message in messages:
            writer.write(message)
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(answer or len(message)), READ_TIMEOUT)
        return time.monotonic() - started
    finally:
        writer.close()


def resp(*args: str | bytes) -> bytes:
    return encoder.command([a if isinstance(a, bytes) else a.encode() for a in args])


# -- TCP relay -----------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["downstream", "upstream", "both"])
async def test_tcp_latency_delays_each_chunk(setup: Setup, direction: str) -> None:
    await setup.add("raw", kind="latency", delay=f"{LAG}s", direction=direction)
    seconds = await round_trips(setup.port("raw"), [b"ping %d" % i for i in range(5)])
    ways = 2 if direction == "both" else 1
    assert seconds >= 5 * ways * LAG * SLACK
    assert (await setup.record("raw"))["faults"] == ["f"]


async def test_tcp_bandwidth_paces_the_stream(setup: Setup) -> None:
    await setup.add("raw", kind="bandwidth", rate="4KiB")
    seconds = await round_trips(setup.port("raw"), [b"x" * 8192])
    assert seconds >= 2.0 * SLACK


async def test_tcp_slicer_cuts_and_spaces_the_stream(setup: Setup) -> None:
    await setup.add("raw", kind="slicer", size=64, delay="50ms")
    seconds = await round_trips(setup.port("raw"), [b"y" * 640])
    assert seconds >= 10 * 0.05 * SLACK


async def test_tcp_limit_data_closes_after_n_bytes(setup: Setup) -> None:
    await setup.add("raw", kind="limit_data", bytes=100)
    outcome = await converse(setup.port("raw"), b"z" * 1000)
    assert outcome.data == b"z" * 100 and not outcome.reset
    assert "limit_data" in (await setup.record("raw"))["error"]


async def test_tcp_reset_after_n_bytes_resets(setup: Setup) -> None:
    await setup.add("raw", kind="reset", after_bytes=100)
    outcome = await converse(setup.port("raw"), b"r" * 1000)
    assert outcome.reset and len(outcome.data) <= 100
    assert "reset after 100 bytes" in (await setup.record("raw"))["error"]


@pytest.mark.parametrize("kind", ["reset", "down"])
async def test_tcp_reset_and_down_refuse_the_connection(setup: Setup, kind: str) -> None:
    await setup.add("raw", kind=kind)
    outcome = await converse(setup.port("raw"), b"hello")
    assert outcome.data == b"" and outcome.reset
    assert "connection refused" in (await setup.record("raw"))["error"]


async def test_tcp_timeout_holds_then_closes(setup: Setup) -> None:
    await setup.add("raw", kind="timeout", timeout="500ms")
    outcome = await converse(setup.port("raw"), b"anyone?")
    assert outcome.data == b"" and outcome.seconds >= 0.5 * SLACK


async def test_tcp_slow_close_delays_the_close(setup: Setup) -> None:
    await setup.add("talk", kind="slow_close", delay="1s")
    outcome = await converse(setup.port("talk"))
    assert outcome.data == b"goodbye\n" and outcome.seconds >= 1.0 * SLACK


# -- sharded Redis -------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["downstream", "upstream"])
async def test_shards_latency_delays_each_reply(setup: Setup, direction: str) -> None:
    """The issue's case: five PINGs with a 200 ms latency took 0.02 s."""
    await setup.add("cache", kind="latency", delay=f"{LAG}s", direction=direction)
    seconds = await round_trips(setup.port("cache"), [resp("PING")] * 5, answer=7)
    assert seconds >= 5 * LAG * SLACK
    assert (await setup.record("cache"))["faults"] == ["f"]


async def test_shards_bandwidth_paces_replies_from_a_shard(setup: Setup) -> None:
    port = setup.port("cache")
    value = b"v" * 8000
    await round_trips(port, [resp("SET", "big", value)], answer=5)  # before the fault
    await setup.add("cache", kind="bandwidth", rate="4KiB")
    reply = b"$8000\r\n" + value + b"\r\n"
    seconds = await round_trips(port, [resp("GET", "big")], answer=len(reply))
    assert seconds >= 8000 / 4096 * SLACK


async def test_shards_slicer_spaces_replies(setup: Setup) -> None:
    port = setup.port("cache")
    await round_trips(port, [resp("SET", "mid", b"m" * 634)], answer=5)
    await setup.add("cache", kind="slicer", size=64, delay="50ms")
    seconds = await round_trips(port, [resp("GET", "mid")], answer=len(b"$634\r\n") + 636)
    assert seconds >= 10 * 0.05 * SLACK


async def test_shards_limit_data_cuts_the_replies(setup: Setup) -> None:
    await setup.add("cache", kind="limit_data", bytes=30)
    outcome = await converse(setup.port("cache"), resp("PING") * 5)
    assert outcome.data == (b"+PONG\r\n" * 5)[:30] and not outcome.reset


async def test_shards_limit_data_upstream_cuts_the_commands(setup: Setup) -> None:
    await setup.add("cache", kind="limit_data", bytes=len(resp("PING")) * 2, direction="upstream")
    outcome = await converse(setup.port("cache"), resp("PING") * 5)
    assert outcome.data in (b"", b"+PONG\r\n", b"+PONG\r\n" * 2)  # the third never arrived
    assert "limit_data" in (await setup.record("cache"))["error"]


async def test_shards_reset_after_n_bytes_resets(setup: Setup) -> None:
    await setup.add("cache", kind="reset", after_bytes=30)
    outcome = await converse(setup.port("cache"), resp("PING") * 5)
    assert outcome.reset and len(outcome.data) <= 30


@pytest.mark.parametrize("kind", ["reset", "down"])
async def test_shards_reset_and_down_refuse_the_connection(setup: Setup, kind: str) -> None:
    await setup.add("cache", kind=kind)
    outcome = await converse(setup.port("cache"), resp("PING"))
    assert outcome.data == b"" and outcome.reset


async def test_shards_timeout_holds_then_closes(setup: Setup) -> None:
    await setup.add("cache", kind="timeout", timeout="500ms")
    outcome = await converse(setup.port("cache"), resp("PING"))
    assert outcome.data == b"" and outcome.seconds >= 0.5 * SLACK


async def test_shards_slow_close_delays_the_close_after_quit(setup: Setup) -> None:
    await setup.add("cache", kind="slow_close", delay="1s")
    outcome = await converse(setup.port("cache"), resp("QUIT"))
    assert outcome.data == b"+OK\r\n" and outcome.seconds >= 1.0 * SLACK


# -- WebSocket -----------------------------------------------------------------------------------


async def ws_turns(setup: Setup, texts: list[str], path: str = "/echo"
                   ) -> tuple[float, list[Any]]:
    """Seconds the turns took after the handshake, and what came back (messages, then how the
    session ended when it ended early)."""
    url = f"http://127.0.0.1:{setup.port('web')}{path}"
    got: list[Any] = []
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        started = time.monotonic()
        for text in texts:
            await ws.send_str(text)
            msg = await ws.receive(timeout=READ_TIMEOUT)
            if msg.type != WSMsgType.TEXT:
                got.append(msg.type)
                break
            got.append(msg.data)
        return time.monotonic() - started, got


@pytest.mark.parametrize("direction", ["downstream", "upstream", "both"])
async def test_websocket_latency_delays_each_message(setup: Setup, direction: str) -> None:
    await setup.add("web", kind="latency", delay=f"{LAG}s", direction=direction)
    seconds, got = await ws_turns(setup, ["a", "b", "c"])
    assert got == ["echo:a", "echo:b", "echo:c"]
    ways = 2 if direction == "both" else 1
    assert seconds >= 3 * ways * LAG * SLACK  # after the handshake: each message was late


async def test_websocket_bandwidth_paces_the_frames(setup: Setup) -> None:
    await setup.add("web", kind="bandwidth", rate="4KiB")
    seconds, got = await ws_turns(setup, ["x" * 8000])
    assert got == ["echo:" + "x" * 8000]
    assert seconds >= 8000 / 4096 * SLACK


async def test_websocket_slicer_spaces_the_frames(setup: Setup) -> None:
    await setup.add("web", kind="slicer", size=64, delay="50ms")
    seconds, got = await ws_turns(setup, ["s" * 630])
    assert got == ["echo:" + "s" * 630]
    assert seconds >= 10 * 0.05 * SLACK


@pytest.mark.parametrize(("kind", "params", "error"), [
    ("limit_data", {"bytes": 350}, "limit_data"),
    ("reset", {"after_bytes": 350}, "reset after 350 bytes"),
])
async def test_websocket_cuts_after_n_bytes_of_frames(setup: Setup, kind: str,
                                                      params: dict[str, Any], error: str) -> None:
    await setup.add("web", kind=kind, **params)
    texts = [f"m{i}" + "." * 98 for i in range(10)]  # echoed as 105-byte frames
    _, got = await ws_turns(setup, texts)
    assert got[:3] == [f"echo:{t}" for t in texts[:3]]
    assert got[3] in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR) and len(got) == 4
    assert error in (await setup.record("web"))["error"]


@pytest.mark.parametrize(("kind", "params"), [
    ("reset", {}), ("down", {}), ("malformed", {}), ("abort", {"status": 503}),
])
async def test_websocket_handshake_faults_refuse_the_upgrade(
    setup: Setup, kind: str, params: dict[str, Any]
) -> None:
    await setup.add("web", kind=kind, **params)
    url = f"http://127.0.0.1:{setup.port('web')}/echo"
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientError) as info:
            async with client.ws_connect(url):
                pass
    if kind == "abort":
        assert isinstance(info.value, aiohttp.WSServerHandshakeError)
        assert info.value.status == 503


async def test_websocket_timeout_holds_the_upgrade(setup: Setup) -> None:
    await setup.add("web", kind="timeout", timeout="500ms")
    started = time.monotonic()
    url = f"http://127.0.0.1:{setup.port('web')}/echo"
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientError):
            async with client.ws_connect(url):
                pass
    assert time.monotonic() - started >= 0.5 * SLACK


async def test_websocket_slow_close_delays_the_upstreams_close(setup: Setup) -> None:
    await setup.add("web", kind="slow_close", delay="1s")
    url = f"http://127.0.0.1:{setup.port('web')}/bye"
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        started = time.monotonic()
        first = await ws.receive(timeout=READ_TIMEOUT)
        closing = await ws.receive(timeout=READ_TIMEOUT)
        seconds = time.monotonic() - started
    assert (first.type, first.data) == (WSMsgType.TEXT, "bye")
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and seconds >= 1.0 * SLACK


async def test_websocket_messages_are_recorded_one_by_one(setup: Setup) -> None:
    url = f"http://127.0.0.1:{setup.port('web')}/echo"
    texts = [f"hello{i}" for i in range(5)]
    blobs = [bytes([i, 255, 0]) * (i + 1) for i in range(3)]
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        for text in texts:
            await ws.send_str(text)
            assert (await ws.receive(timeout=READ_TIMEOUT)).data == f"echo:{text}"
        for blob in blobs:
            await ws.send_bytes(blob)
            assert (await ws.receive(timeout=READ_TIMEOUT)).data == blob[::-1]
    detail = await setup.record("web")
    data = [m for m in detail["messages"] if m["type"] in ("text", "binary")]
    sent = [(m["type"], m["size"], m["data"]) for m in data if m["direction"] == "upstream"]
    received = [(m["type"], m["size"], m["data"]) for m in data
                if m["direction"] == "downstream"]
    assert sent[:5] == [("text", len(t), t) for t in texts]
    assert received[:5] == [("text", len(t) + 5, f"echo:{t}") for t in texts]
    assert [(kind, size) for kind, size, _ in sent[5:]] == [("binary", len(b)) for b in blobs]
    assert [(kind, size) for kind, size, _ in received[5:]] == [("binary", len(b)) for b in blobs]
    assert {m["opcode"] for m in data} == {1, 2}
    # in order, each answer after its question; the close handshake is there too
    directions = [m["direction"] for m in data]
    assert directions == ["upstream", "downstream"] * 8
    assert [m["type"] for m in detail["messages"] if m["type"] == "close"] == ["close", "close"]
    # HAR, as Chrome writes it
    [entry] = to_har([detail], "test")["log"]["entries"]
    har = entry["_webSocketMessages"]
    assert [(m["type"], m["opcode"]) for m in har] == [("send", 1), ("receive", 1)] * 5 + [
        ("send", 2), ("receive", 2)] * 3
    assert har[0]["data"] == "hello0" and har[1]["data"] == "echo:hello0"
    assert "postData" not in entry["request"] and "text" not in entry["response"]["content"]


# -- refused, and why ----------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["raw", "cache"])
@pytest.mark.parametrize(("kind", "where", "why"), [
    ("abort", "http, http2 and grpc", "answers with an HTTP status"),
    ("malformed", "http", "breaks an HTTP response"),
])
async def test_http_only_kinds_are_refused_on_tcp_services(setup: Setup, service: str,
                                                           kind: str, where: str,
                                                           why: str) -> None:
    with pytest.raises(ControlError, match=f"apply to {where} services only: it {why}"):
        await setup.add(service, kind=kind)
    assert setup.engine.services[service].faults.names() == []


async def test_latency_on_is_refused_on_tcp(setup: Setup) -> None:
    with pytest.raises(ControlError, match="'on' is for http services"):
        await setup.add("cache", kind="latency", delay="1s", on="response")


ANSWERING = """\
version: 1
services:
  api:
    listen: 0
    target: real
    targets:
      real: http://127.0.0.1:1
      fake: {target}
    faults:
      f: {{kind: {kind}, {params}direction: {direction}}}
"""


@pytest.mark.parametrize("target", ["echo", "{mock: {routes: []}}"])
@pytest.mark.parametrize(("kind", "params"), [
    ("bandwidth", "rate: 1KiB, "), ("slicer", ""), ("limit_data", "bytes: 10, "),
    ("reset", "after_bytes: 10, "),
])
@pytest.mark.parametrize("direction", ["upstream", "both"])
def test_request_shaping_is_accepted_where_the_target_answers_itself(
    tmp_path: Path, target: str, kind: str, params: str, direction: str
) -> None:
    """Echo and mock targets read the request body through the service's upload shaping
    (service/shaping.py), so request-side faults act there too: their effect is asserted in
    tests/service/test_response_faults_matrix.py::test_upload_fault_takes_effect."""
    text = ANSWERING.format(target=target, kind=kind, params=params, direction=direction)
    path = tmp_path / "devamb.yaml"
    path.write_text(text)
    assert load_profile(path, environ={}).services["api"].faults["f"].kind == kind


async def test_request_shaping_can_be_added_on_an_echo_target(make_engine: EngineFactory) -> None:
    engine = await make_engine("""
        version: 1
        services:
          api:
            listen: 0
            targets: {fake: echo}
    """)
    for fault in ({"kind": "bandwidth", "rate": "1KiB", "direction": "upstream"},
                  {"kind": "bandwidth", "rate": "1KiB"}, {"kind": "reset"},
                  {"kind": "reset", "direction": "upstream"}, {"kind": "abort"},
                  {"kind": "latency", "delay": "1ms", "direction": "both"}):
        await engine.add_fault("api", dict(fault))


# -- HTTP/2 and gRPC calls -----------------------------------------------------------------------
# Each kind's effect per call, as a grpcio client or an h2 client sees it, is asserted in
# tests/service/test_http2_faults.py; here, which kinds each HTTP/2 service takes.

H2_FAULTS = {
    "latency": {"delay": "1ms"}, "abort": {"grpc_status": "UNAVAILABLE"}, "reset": {},
    "timeout": {}, "bandwidth": {"rate": "1KiB"}, "slicer": {}, "limit_data": {"bytes": 10},
    "slow_close": {"delay": "1ms"}, "down": {}, "malformed": {},
    "error": {"sqlstate": "40001"},  # postgres and redis only: refused on HTTP/2
}


@pytest.mark.parametrize("protocol", ["http2", "grpc"])
@pytest.mark.parametrize("kind", sorted(H2_FAULTS))
def test_every_kind_acts_per_call_or_is_refused_on_http2(protocol: str, kind: str) -> None:
    from devamb.faults.registry import KINDS
    from devamb.faults.spec import parse_fault_json

    assert set(H2_FAULTS) == set(KINDS)  # a new kind is placed here too
    fault = {"kind": kind, **H2_FAULTS[kind]}
    if kind == "malformed":
        with pytest.raises(ControlError, match="HTTP/2 layer"):
            parse_fault_json("f", fault, protocol, {"up": "url"})
        return
    if kind == "error":
        with pytest.raises(ControlError, match="postgres and redis services only"):
            parse_fault_json("f", fault, protocol, {"up": "url"})
        return
    assert parse_fault_json("f", fault, protocol, {"up": "url"}).kind == kind


@pytest.mark.parametrize(("fault", "refused"), [
    ({"kind": "bandwidth", "rate": "1KiB"}, True),
    ({"kind": "slow_close", "delay": "1s"}, True),
    ({"kind": "latency", "delay": "1s", "on": "response"}, True),
    ({"kind": "latency", "delay": "1s", "per_message": True}, True),
    ({"kind": "reset", "after_bytes": 10}, True),
    ({"kind": "latency", "delay": "1s"}, False),
    ({"kind": "reset"}, False),
    ({"kind": "abort", "status": 503}, False),
    ({"kind": "timeout"}, False),
    ({"kind": "down"}, False),
])
def test_call_shaping_is_refused_where_an_h2_target_answers_itself(
    fault: dict[str, Any], refused: bool
) -> None:
    """Echo and mock targets answer HTTP/2 calls themselves (serve_h2): what acts before the
    call goes on acts, what paces or cuts a relayed answer is refused."""
    from devamb.faults.spec import parse_fault_json

    targets = {"up": "url", "fake": "echo"}
    if refused:
        with pytest.raises(ControlError, match="'fake' \\(echo\\): an echo or mock target"):
            parse_fault_json("f", fault, "grpc", targets)
    else:
        assert parse_fault_json("f", fault, "grpc", targets).kind == fault["kind"]
