"""Faults per HTTP/2 call on http2 and grpc services, as real clients see them: a grpcio client
(the grpc.StatusCode it reports) against a real grpcio server through devamb, and plain HTTP/2
calls with devamb's own h2 client and curl. Times are lower bounds only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from devamb.control.protocol import ControlError
from devamb.engine.core import Engine
from devamb.proxy.h2upstream import H2Upstream as H2Client
from tests.conftest import EngineFactory
from tests.upstreams_h2 import H2Upstream

SLACK = 0.85  # a lower bound is this share of the ideal time (timers round, clocks differ)
LAG = 0.3

PROFILE = """
version: 1
services:
  rpc:
    listen: 0
    protocol: grpc
    timeout: 10s
    header_faults: true
    targets:
      up: http://127.0.0.1:{grpc}
  h2:
    listen: 0
    protocol: http2
    timeout: 10s
    targets:
      up: http://127.0.0.1:{h2}
  retrying:
    listen: 0
    protocol: grpc
    retries: {{on: [UNAVAILABLE], attempts: 3, backoff: 10ms, methods: [/test.Echo/Flak*]}}
    targets:
      up: http://127.0.0.1:{grpc}
  guarded:
    listen: 0
    protocol: grpc
    circuit_breaker: {{failures: 2, window: 30s, open_for: 30s}}
    targets:
      up: http://127.0.0.1:{grpc}
  h2retry:
    listen: 0
    protocol: http2
    retries: {{attempts: 3, backoff: 10ms}}
    targets:
      up: http://127.0.0.1:{h2}
  h2short:
    listen: 0
    protocol: http2
    timeout: 400ms
    targets:
      up: http://127.0.0.1:{h2}
scenarios:
  outage:
    loop: true
    length: 1m
    steps:
      - {{at: 0s, service: rpc, add: {{name: blip, kind: abort, grpc_status: UNAVAILABLE,
                                      match: {{path: /test.Echo/Ping}}}}}}
"""


# -- the upstreams ---------------------------------------------------------------------------


class Upstream:
    """A grpcio server: test.Echo/Ping (pong:<request>), Count (N messages of 1 KiB), Slow
    (answers after `slow` seconds), Flaky (UNAVAILABLE for the first `failures` calls)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.failures = 0
        self.slow = 3.0
        self.lock = threading.Lock()

    def _count(self, name: str) -> int:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            return self.calls[name]

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._count("Ping")
        return b"pong:" + request

    def count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._count("Count")
        for i in range(int(request)):
            yield bytes([65 + i % 26]) * 1024

    def slow_call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._count("Slow")
        time.sleep(self.slow)
        return b"late"

    def flaky_sum(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        digest = hashlib.sha256()
        for request in requests:
            digest.update(request)
        if self._count("FlakySum") <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return digest.hexdigest().encode()

    def flaky(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if self._count("Flaky") <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return b"fine:" + request


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    state = Upstream()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Ping": grpc.unary_unary_rpc_method_handler(state.ping),
        "Count": grpc.unary_stream_rpc_method_handler(state.count),
        "Slow": grpc.unary_unary_rpc_method_handler(state.slow_call),
        "Flaky": grpc.unary_unary_rpc_method_handler(state.flaky),
        "Unsafe": grpc.unary_unary_rpc_method_handler(state.flaky),
        "FlakySum": grpc.stream_unary_rpc_method_handler(state.flaky_sum),
    })
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield state, port
    server.stop(None)


@dataclass
class Setup:
    engine: Engine
    state: Upstream
    h2up: H2Upstream

    def port(self, service: str) -> int:
        bound = self.engine.services[service].bound
        assert bound is not None
        return bound[1]

    async def add(self, service: str = "rpc", name: str = "f", **fault: Any) -> dict[str, Any]:
        return await self.engine.add_fault(service, {"name": name, **fault})

    async def record(self, service: str = "rpc", count: int = 1,
                     timeout: float = 10.0) -> dict[str, Any]:
        """The last finished exchange of `service` once `count` are, as the control API
        details it (a client may see its answer before devamb's record is finished)."""
        deadline = time.monotonic() + timeout
        while True:
            done = [e for e in self.engine.store.recent(100)
                    if e.service == service and e.duration_ms is not None]
            if len(done) >= count:
                return await self.engine.exchange(done[-1].id)
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished exchange on {service}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def setup(make_engine: EngineFactory,
                upstream: tuple[Upstream, int]) -> AsyncIterator[Setup]:
    state, port = upstream
    h2up = await H2Upstream("up").start()
    engine = await make_engine(PROFILE.format(grpc=port, h2=h2up.port))
    yield Setup(engine, state, h2up)
    await h2up.stop()


# -- clients -----------------------------------------------------------------------------------


@dataclass
class Result:
    code: grpc.StatusCode
    details: str | None
    replies: list[bytes]
    seconds: float


def _grpc(port: int, method: str, request: bytes, timeout: float | None,
          streaming: bool, metadata: tuple[tuple[str, str], ...] = ()) -> Result:
    started = time.monotonic()
    replies: list[bytes] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            if streaming:
                for reply in channel.unary_stream(method)(request, timeout=timeout,
                                                          metadata=metadata):
                    replies.append(reply)
            else:
                replies.append(channel.unary_unary(method)(request, timeout=timeout,
                                                           metadata=metadata))
            code, details = grpc.StatusCode.OK, None
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
    return Result(code, details, replies, time.monotonic() - started)


async def call(setup: Setup, method: str = "Ping", request: bytes = b"hi",
               timeout: float | None = 15.0, streaming: bool = False,
               metadata: tuple[tuple[str, str], ...] = (), service: str = "rpc") -> Result:
    """One call by a real grpcio client (in a thread: it blocks) through `service`."""
    return await asyncio.to_thread(_grpc, setup.port(service), f"/test.Echo/{method}", request,
                                   timeout, streaming, metadata)


async def h2_call(port: int, path: str, extra: list[tuple[bytes, bytes]] | None = None,
                  body: bytes = b"") -> tuple[dict[str, str], bytes, dict[str, str], str | None]:
    """(headers, body, trailers, how the stream was reset or None) by devamb's h2 client."""
    client = H2Client("127.0.0.1", port, 5.0)
    headers = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"http"),
               (b":authority", f"127.0.0.1:{port}".encode()), (b":path", path.encode()),
               *(extra or [])]
    got: dict[str, str] = {}
    trailers: dict[str, str] = {}
    data = bytearray()
    try:
        stream = await client.open(headers, end=not body)
        if body:
            await stream.send_data(body, end=True)
        while True:
            item = await asyncio.wait_for(stream.next(), 15)
            if item.kind == "headers":
                got = {k.decode(): v.decode() for k, v in item.headers}
            elif item.kind == "data":
                data += item.data
                stream.ack(item.flow)
            elif item.kind == "trailers":
                trailers = {k.decode(): v.decode() for k, v in item.headers}
            elif item.kind == "end":
                return got, bytes(data), trailers, None
            else:
                return got, bytes(data), trailers, "lost" if item.lost else f"code {item.code}"
    finally:
        client.close()


GRPC_HEADERS = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]


def message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


# -- the matrix: each fault kind, as a grpcio client sees it -------------------------------------


@pytest.mark.parametrize(("fault", "code"), [
    ({"grpc_status": "UNAVAILABLE"}, grpc.StatusCode.UNAVAILABLE),
    ({"grpc_status": "resource_exhausted"}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"grpc_status": 4}, grpc.StatusCode.DEADLINE_EXCEEDED),
    ({"grpc_status": "PERMISSION_DENIED"}, grpc.StatusCode.PERMISSION_DENIED),
    ({"status": 503}, grpc.StatusCode.UNAVAILABLE),  # HTTP -> gRPC, as clients map it
    ({"status": 404}, grpc.StatusCode.UNIMPLEMENTED),
    ({"status": 401}, grpc.StatusCode.UNAUTHENTICATED),
    ({"status": 500}, grpc.StatusCode.UNKNOWN),
    ({}, grpc.StatusCode.UNAVAILABLE),  # abort's default status is 503
])
async def test_abort_answers_the_grpc_status(setup: Setup, fault: dict[str, Any],
                                             code: grpc.StatusCode) -> None:
    await setup.add(kind="abort", **fault)
    result = await call(setup)
    assert result.code == code, result
    assert setup.state.calls.get("Ping") is None  # the upstream was not called
    record = await setup.record()
    assert record["faults"] == ["f"] and record["status"] == 200
    assert ("grpc-status", str(code.value[0])) in [tuple(h) for h in record["response_headers"]]


async def test_abort_grpc_message_is_percent_encoded_and_decoded_back(setup: Setup) -> None:
    text = "dépendance 100% en panne\n"
    await setup.add(kind="abort", grpc_status="UNAVAILABLE", grpc_message=text)
    result = await call(setup)
    assert result.code == grpc.StatusCode.UNAVAILABLE and result.details == text
    _, _, _, _ = await h2_call(setup.port("rpc"), "/test.Echo/Ping", GRPC_HEADERS,
                               message(b"x"))
    headers, body, trailers, reset = await h2_call(setup.port("rpc"), "/test.Echo/Ping",
                                                   GRPC_HEADERS, message(b"x"))
    assert reset is None and body == b"" and trailers == {}  # trailers-only
    assert headers[":status"] == "200" and headers["content-type"] == "application/grpc"
    assert headers["grpc-status"] == "14"
    assert headers["grpc-message"] == "d%C3%A9pendance 100%25 en panne%0A"


async def test_latency_delays_the_call(setup: Setup) -> None:
    await setup.add(kind="latency", delay=f"{LAG}s")
    result = await call(setup)
    assert result.code == grpc.StatusCode.OK and result.replies == [b"pong:hi"]
    assert result.seconds >= LAG * SLACK
    await setup.add(kind="latency", delay=f"{LAG}s", on="response")
    result = await call(setup)
    assert result.code == grpc.StatusCode.OK and result.seconds >= LAG * SLACK
    assert setup.state.calls["Ping"] == 2


async def test_latency_per_message_delays_each_streamed_message(setup: Setup) -> None:
    await setup.add(kind="latency", delay="150ms", per_message=True)
    result = await call(setup, "Count", b"5", streaming=True)
    assert result.code == grpc.StatusCode.OK and len(result.replies) == 5
    assert result.seconds >= 5 * 0.15 * SLACK


async def test_latency_per_message_upstream_delays_the_request(setup: Setup) -> None:
    await setup.add(kind="latency", delay=f"{LAG}s", per_message=True, direction="upstream")
    result = await call(setup)
    assert result.code == grpc.StatusCode.OK and result.seconds >= LAG * SLACK


@pytest.mark.parametrize(("fault", "code"), [
    ({}, grpc.StatusCode.INTERNAL),  # RST_STREAM INTERNAL_ERROR
    ({"code": "CANCEL"}, grpc.StatusCode.CANCELLED),
    ({"code": "REFUSED_STREAM"}, grpc.StatusCode.UNAVAILABLE),  # (grpcio does not retry it)
    ({"code": "ENHANCE_YOUR_CALM"}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"scope": "connection"}, grpc.StatusCode.UNAVAILABLE),  # GOAWAY, then the close
])
async def test_reset_resets_the_stream_or_the_connection(setup: Setup, fault: dict[str, Any],
                                                         code: grpc.StatusCode) -> None:
    await setup.add(kind="reset", **fault)
    result = await call(setup)
    assert result.code == code, result
    record = await setup.record()
    assert record["faults"] == ["f"]
    assert ("GOAWAY" if fault.get("scope") else "RST_STREAM") in record["error"]
    await setup.engine.remove_fault("rpc", "f")
    assert (await call(setup)).replies == [b"pong:hi"]  # a new connection, a new stream


async def test_reset_after_bytes_cuts_a_stream_of_messages(setup: Setup) -> None:
    await setup.add(kind="reset", after_bytes="3KiB")
    result = await call(setup, "Count", b"10", streaming=True)
    assert result.code == grpc.StatusCode.INTERNAL and len(result.replies) < 3
    assert "reset after 3072 bytes" in (await setup.record())["error"]


async def test_limit_data_cancels_the_stream_after_n_bytes(setup: Setup) -> None:
    await setup.add(kind="limit_data", bytes="2KiB")
    result = await call(setup, "Count", b"10", streaming=True)
    assert result.code == grpc.StatusCode.CANCELLED and len(result.replies) < 2
    assert "limit_data" in (await setup.record())["error"]


async def test_timeout_holds_until_the_clients_deadline(setup: Setup) -> None:
    await setup.add(kind="timeout")
    result = await call(setup, timeout=0.5)
    assert result.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert result.seconds >= 0.5 * SLACK
    assert setup.state.calls.get("Ping") is None


async def test_timeout_ends_when_the_fault_is_removed(setup: Setup) -> None:
    await setup.add(kind="timeout")
    pending = asyncio.create_task(call(setup))
    await asyncio.sleep(LAG)
    assert not pending.done()
    await setup.engine.remove_fault("rpc", "f")
    result = await pending
    assert result.code == grpc.StatusCode.OK and result.replies == [b"pong:hi"]


async def test_timeout_with_its_own_time_resets_the_held_call(setup: Setup) -> None:
    await setup.add(kind="timeout", timeout=f"{LAG}s")
    result = await call(setup)
    assert result.code == grpc.StatusCode.CANCELLED and result.seconds >= LAG * SLACK
    assert "fault timeout: held" in (await setup.record())["error"]


async def test_down_refuses_the_call(setup: Setup) -> None:
    await setup.add(kind="down")
    result = await call(setup)
    assert result.code == grpc.StatusCode.UNAVAILABLE, result
    assert setup.state.calls.get("Ping") is None
    assert "REFUSED_STREAM" in (await setup.record())["error"]


async def test_bandwidth_paces_the_response_messages(setup: Setup) -> None:
    await setup.add(kind="bandwidth", rate="8KiB")
    result = await call(setup, "Count", b"16", streaming=True)
    assert result.code == grpc.StatusCode.OK and len(result.replies) == 16
    assert result.seconds >= 16 * 1029 / 8192 * SLACK


async def test_slicer_and_slow_close_on_a_call(setup: Setup) -> None:
    await setup.add(kind="slicer", size=256, delay="50ms")
    await setup.add(name="g", kind="slow_close", delay=f"{LAG}s")
    result = await call(setup, "Count", b"2", streaming=True)
    assert result.code == grpc.StatusCode.OK and len(result.replies) == 2
    assert result.seconds >= (2 * 1029 // 256 * 0.05 + LAG) * SLACK


# -- the call's deadline: the service's timeout, or the client's grpc-timeout -------------------


async def test_grpc_timeout_is_honoured(setup: Setup) -> None:
    """The upstream holds the call until told, the service's timeout is 10 s, the client asks
    for 400 ms: devamb answers DEADLINE_EXCEEDED itself at 400 ms. Neither end keeps a
    deadline of its own (an h2 client, and an h2 upstream that ignores `grpc-timeout`; a
    grpcio server would enforce the forwarded header too and race devamb), so the answer
    seen is devamb's."""
    started = time.monotonic()
    headers, body, _, reset = await h2_call(
        setup.port("h2"), "/slow", [*GRPC_HEADERS, (b"grpc-timeout", b"400m")], message(b"x"))
    assert reset is None and headers["grpc-status"] == "4" and body == b""
    assert time.monotonic() - started >= 0.4 * SLACK
    assert "deadline (0.4s)" in (await setup.record("h2"))["error"]
    setup.h2up.gate.set()


async def test_a_held_call_ends_at_the_grpc_timeout(setup: Setup) -> None:
    await setup.add(kind="timeout")
    headers, _, _, reset = await h2_call(
        setup.port("rpc"), "/test.Echo/Ping", [*GRPC_HEADERS, (b"grpc-timeout", b"300m")],
        message(b"x"))
    assert reset is None and headers["grpc-status"] == "4"


async def test_latency_longer_than_the_deadline_ends_at_the_deadline(setup: Setup) -> None:
    await setup.add(kind="latency", delay="5s")
    started = time.monotonic()
    headers, _, _, reset = await h2_call(
        setup.port("rpc"), "/test.Echo/Ping", [*GRPC_HEADERS, (b"grpc-timeout", b"300m")],
        message(b"x"))
    assert reset is None and headers["grpc-status"] == "4"
    assert time.monotonic() - started >= 0.3 * SLACK
    assert setup.state.calls.get("Ping") is None  # the call never went on


async def test_http2_call_past_the_service_timeout_gets_504(setup: Setup) -> None:
    started = time.monotonic()
    headers, body, _, _ = await h2_call(setup.port("h2short"), "/slow")
    assert headers[":status"] == "504" and b"deadline (0.4s)" in body
    assert time.monotonic() - started >= 0.4 * SLACK
    setup.h2up.gate.set()


# -- retries -------------------------------------------------------------------------------------


async def test_retries_on_unavailable_until_the_upstream_answers(setup: Setup) -> None:
    setup.state.failures = 2
    result = await call(setup, "Flaky", b"x", service="retrying")
    assert result.code == grpc.StatusCode.OK and result.replies == [b"fine:x"]
    assert setup.state.calls["Flaky"] == 3
    record = await setup.record("retrying")
    assert record["attempts"] == 3
    assert record["retried"] == ["upstream answered UNAVAILABLE"] * 2


async def test_retries_give_up_after_their_attempts(setup: Setup) -> None:
    setup.state.failures = 10
    result = await call(setup, "Flaky", b"x", service="retrying")
    assert (result.code, result.details) == (grpc.StatusCode.UNAVAILABLE, "not yet")
    assert setup.state.calls["Flaky"] == 3


def _sum(port: int, parts: list[bytes]) -> tuple[grpc.StatusCode, bytes | None]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return grpc.StatusCode.OK, channel.stream_unary("/test.Echo/FlakySum")(
                iter(parts), timeout=15)
        except grpc.RpcError as exc:
            return exc.code(), None


@pytest.mark.parametrize(("count", "retried"), [(3, True), (100, False)])
async def test_a_streamed_request_is_retried_only_when_it_was_kept_whole(
    setup: Setup, count: int, retried: bool
) -> None:
    """A client-streaming call: 3 KiB of messages are kept and sent again; 100 KiB are more
    than a retry keeps (64 KiB), so the call is sent once and its failure passed on."""
    setup.state.failures = 1
    parts = [bytes([i % 251]) * 1024 for i in range(count)]
    code, reply = await asyncio.to_thread(_sum, setup.port("retrying"), parts)
    if retried:
        expected = hashlib.sha256(b"".join(parts)).hexdigest().encode()
        assert (code, reply) == (grpc.StatusCode.OK, expected)
        assert setup.state.calls["FlakySum"] == 2
    else:
        assert code == grpc.StatusCode.UNAVAILABLE and setup.state.calls["FlakySum"] == 1


async def test_a_method_not_declared_idempotent_is_not_retried(setup: Setup) -> None:
    setup.state.failures = 1
    result = await call(setup, "Unsafe", b"x", service="retrying")
    assert result.code == grpc.StatusCode.UNAVAILABLE and setup.state.calls["Flaky"] == 1
    assert (await setup.record("retrying"))["attempts"] == 1


async def test_http2_get_is_retried_on_a_reset_stream(setup: Setup) -> None:
    _, _, _, reset = await h2_call(setup.port("h2retry"), "/reset")
    assert reset == "code 11"  # the last try's reset reaches the client
    assert setup.h2up.paths.count("/reset") == 3


async def test_the_circuit_breaker_opens_on_failed_grpc_calls(setup: Setup) -> None:
    setup.state.failures = 10
    for _ in range(2):
        assert (await call(setup, "Flaky", service="guarded")).code == grpc.StatusCode.UNAVAILABLE
    for _ in range(200):  # the breaker counts a call once its record is finished
        if setup.engine.services["guarded"].policy.breakers["up"].state == "open":
            break
        await asyncio.sleep(0.02)
    refused = await call(setup, "Flaky", service="guarded")
    assert refused.code == grpc.StatusCode.UNAVAILABLE
    assert refused.details == "the circuit breaker of target 'up' is open"
    assert setup.state.calls["Flaky"] == 2


def test_grpc_keys_are_checked_at_their_place(tmp_path: Any) -> None:
    from tests.conftest import problems

    found = problems(tmp_path, """version: 1
services:
  api:
    listen: 0
    targets: {up: "http://127.0.0.1:1"}
    faults:
      a: {kind: abort, grpc_status: UNAVAILABLE}
      b: {kind: reset, scope: connection}
      c: {kind: latency, delay: 1s, per_message: true}
  rpc:
    listen: 0
    protocol: grpc
    targets: {up: "http://127.0.0.1:1"}
    faults:
      d: {kind: abort, grpc_status: UNAVAIL}
      e: {kind: abort, grpc_status: 0}
      f: {kind: reset, code: NOPE}
      g: {kind: reset, scope: world}
""")
    assert found == [
        "devamb.yaml:7:24: services.api.faults.a.grpc_status: 'grpc_status' is for http2 and "
        "grpc services (gRPC calls are HTTP/2)",
        "devamb.yaml:8:24: services.api.faults.b.scope: 'scope' is for http2 and grpc services "
        "(an HTTP/2 error code or scope); here reset is a TCP reset",
        "devamb.yaml:9:37: services.api.faults.c.per_message: 'per_message' is for http2 and "
        "grpc services (each call's messages)",
        "devamb.yaml:15:37: services.rpc.faults.d.grpc_status: 'UNAVAIL' is not a gRPC error "
        "status; use one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, "
        "NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, "
        "FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, "
        "DATA_LOSS, UNAUTHENTICATED or 1..16",
        "devamb.yaml:16:37: services.rpc.faults.e.grpc_status: grpc_status 0 is not a gRPC "
        "error status (1..16)",
        "devamb.yaml:17:30: services.rpc.faults.f.code: 'NOPE' is not an HTTP/2 error code; "
        "use one of NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, "
        "SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, "
        "COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, "
        "HTTP_1_1_REQUIRED or 0..13",
        "devamb.yaml:18:31: services.rpc.faults.g.scope: 'world' is not one of stream, "
        "connection",
    ]


def test_grpc_status_names_are_retry_conditions_on_grpc_services_only(tmp_path: Any) -> None:
    from tests.conftest import problems

    found = problems(tmp_path, """version: 1
services:
  api:
    listen: 0
    retries: {on: [UNAVAILABLE]}
    targets: {up: "http://127.0.0.1:1"}
  rpc:
    listen: 0
    protocol: grpc
    retries: {on: [UNAVAILBLE], methods: [pkg.Svc/Get]}
    targets: {up: "http://127.0.0.1:1"}
""")
    assert len(found) == 3, found
    assert found[0].startswith("devamb.yaml:5:19: services.api.retries.on: 'UNAVAILABLE' is "
                               "not a retry condition")
    assert found[0].endswith("(gRPC status names are for http2 and grpc services)")
    assert found[1].startswith("devamb.yaml:10:19: services.rpc.retries.on: 'UNAVAILBLE'")
    assert found[2] == ("devamb.yaml:10:42: services.rpc.retries.methods: expected :path globs "
                        "such as /pkg.Service/Get*")


# -- the wrappers ------------------------------------------------------------------------------


async def test_times_one_then_normal(setup: Setup) -> None:
    await setup.add(kind="abort", grpc_status="UNAVAILABLE", times=1)
    first, second = await call(setup), await call(setup)
    assert first.code == grpc.StatusCode.UNAVAILABLE and second.code == grpc.StatusCode.OK


async def test_match_on_one_grpc_method_only(setup: Setup) -> None:
    await setup.add(kind="abort", grpc_status="UNAVAILABLE",
                    match={"path": "/test.Echo/Ping"})
    assert (await call(setup)).code == grpc.StatusCode.UNAVAILABLE
    streamed = await call(setup, "Count", b"2", streaming=True)
    assert streamed.code == grpc.StatusCode.OK and len(streamed.replies) == 2
    await setup.add(kind="abort", grpc_status="UNAVAILABLE", match={"path": "/test.Echo/C*"})
    assert (await call(setup)).code == grpc.StatusCode.OK


@pytest.mark.parametrize(("probability", "code"), [
    (0, grpc.StatusCode.OK), (1, grpc.StatusCode.ABORTED),
])
async def test_probability(setup: Setup, probability: float, code: grpc.StatusCode) -> None:
    await setup.add(kind="abort", grpc_status="ABORTED", probability=probability)
    for _ in range(3):
        assert (await call(setup)).code == code


async def test_for_turns_the_fault_off_after_its_time(setup: Setup) -> None:
    await setup.add(kind="abort", grpc_status="UNAVAILABLE", **{"for": f"{LAG}s"})
    assert (await call(setup)).code == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(LAG * 1.5)
    assert (await call(setup)).code == grpc.StatusCode.OK
    [fault] = setup.engine.services["rpc"].faults.list()
    assert fault["enabled"] is False and fault["fired"] == 1


async def test_after_lets_the_first_calls_through(setup: Setup) -> None:
    await setup.add(kind="abort", grpc_status="UNAVAILABLE", after=2)
    codes = [(await call(setup)).code for _ in range(3)]
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE]


async def test_header_faults_per_call(setup: Setup) -> None:
    aborted = await call(setup, metadata=(("x-devamb-fault-abort", "503"),))
    assert aborted.code == grpc.StatusCode.UNAVAILABLE
    delayed = await call(setup, metadata=(("x-devamb-fault-delay", str(int(LAG * 1000))),))
    assert delayed.code == grpc.StatusCode.OK and delayed.seconds >= LAG * SLACK
    assert (await setup.record(count=2))["faults"] == ["header:latency"]


async def test_a_scenario_step_adds_a_grpc_fault(setup: Setup) -> None:
    await setup.engine.start_scenario("outage")
    for _ in range(200):
        if setup.engine.services["rpc"].faults.get("blip") is not None:
            break
        await asyncio.sleep(0.02)
    assert (await call(setup)).code == grpc.StatusCode.UNAVAILABLE
    assert (await call(setup, "Count", b"1", streaming=True)).code == grpc.StatusCode.OK
    await setup.engine.stop_scenario("outage")
    assert (await call(setup)).code == grpc.StatusCode.OK


def test_cli_fault_add_on_a_grpc_service(tmp_path: Any,
                                         upstream: tuple[Upstream, int]) -> None:
    """`devamb fault add` with the gRPC keys, against a real `devamb up --detach` engine."""
    _, port = upstream
    (tmp_path / "devamb.yaml").write_text(
        f"version: 1\nservices:\n  rpc:\n    listen: 0\n    protocol: grpc\n"
        f"    targets: {{up: 'http://127.0.0.1:{port}'}}\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devamb", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)

    assert cli("up", "--detach").returncode == 0
    try:
        [service] = json.loads(cli("status", "--json").stdout)["services"]
        listen = int(service["listen"].rsplit(":", 1)[1])
        added = cli("fault", "add", "rpc", "abort", "--grpc-status", "UNAVAILABLE",
                    "--grpc-message", "down for a test", "--path", "/test.Echo/Ping",
                    "--times", "1")
        assert added.returncode == 0, added.stderr
        first = _grpc(listen, "/test.Echo/Ping", b"a", 15.0, False)
        second = _grpc(listen, "/test.Echo/Ping", b"b", 15.0, False)
        assert (first.code, first.details) == (grpc.StatusCode.UNAVAILABLE, "down for a test")
        assert second.replies == [b"pong:b"]
        refused = cli("fault", "add", "rpc", "abort", "--grpc-status", "NOPE")
        assert refused.returncode != 0 and "is not a gRPC error status" in refused.stderr
    finally:
        cli("down")


# -- plain HTTP/2 calls --------------------------------------------------------------------------


async def test_http2_abort_answers_the_http_status(setup: Setup) -> None:
    await setup.add("h2", kind="abort", status=429, body="slow down")
    headers, body, _, reset = await h2_call(setup.port("h2"), "/x")
    assert reset is None and headers[":status"] == "429" and body == b"slow down"
    assert headers["x-devamb-fault"] == "abort"
    assert setup.h2up.paths == []


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_http2_abort_seen_by_curl(setup: Setup) -> None:
    await setup.add("h2", kind="abort", status=503)
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
        f"http://127.0.0.1:{setup.port('h2')}/api", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out == b"503"


async def test_http2_reset_and_down_reset_the_stream(setup: Setup) -> None:
    await setup.add("h2", kind="reset")
    assert (await h2_call(setup.port("h2"), "/x"))[3] == "code 2"
    await setup.add("h2", kind="down")
    assert (await h2_call(setup.port("h2"), "/x"))[3] == "code 7"


async def test_http2_limit_data_cancels_the_body(setup: Setup) -> None:
    await setup.add("h2", kind="limit_data", bytes=1000)
    _, body, _, reset = await h2_call(setup.port("h2"), "/size/100000")
    assert reset == "code 8" and len(body) <= 1000


# -- refused, and why -------------------------------------------------------------------------


async def test_malformed_is_refused_on_http2_and_grpc(setup: Setup) -> None:
    for service in ("rpc", "h2"):
        with pytest.raises(ControlError, match=r"HTTP/1\.1 response's framing"):
            await setup.add(service, kind="malformed")


async def test_bad_grpc_status_is_refused(setup: Setup) -> None:
    with pytest.raises(ControlError, match="'UNAVAIL' is not a gRPC error status"):
        await setup.add(kind="abort", grpc_status="UNAVAIL")
