"""Every HTTP target kind x every response-side fault kind, on real sockets.

What is asserted is the effect the client sees (time taken, bytes cut, a reset, the status),
not only the fault's name in the record: the service shapes whatever response a target gives
(service/shaping.py), so a fault fires the same on a relayed upstream, an echo, a mock, a
container or a shard. Then upload faults x echo, mock and url, and the shipped faults.yaml's
"trickle". Bodies are small and delays short; bounds are generous lower bounds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import docker
import docker.errors
import pytest

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.faults.malformed import MODES
from devamb.inspect.exchange import Exchange
from tests.conftest import EngineFactory, free_port
from tests.targets.docker.conftest import RUN_ID, TEST_IMAGE, TEST_LABEL
from tests.upstreams import HttpUpstream

SIZE = 2000  # response bodies, about: small, so that a paced one still takes well under a second
KINDS = ("url", "pool", "split", "shards", "mock", "mock-file", "echo", "docker")
REPO = Path(__file__).resolve().parents[2]


# -- a raw HTTP/1.1 client that notes when bytes arrive -----------------------------------------


@dataclass
class Fetched:
    received: bytes
    error: BaseException | None
    took: float  # seconds from the request's write to the connection's end
    first_at: float | None  # seconds until the first response byte

    @property
    def head(self) -> bytes:
        return self.received.partition(b"\r\n\r\n")[0]

    @property
    def status(self) -> int | None:
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", self.received)
        return int(match.group(1)) if match else None

    @property
    def body(self) -> bytes:
        """The body as far as it came (de-chunked when chunked)."""
        rest = self.received.partition(b"\r\n\r\n")[2]
        if not re.search(rb"(?im)^transfer-encoding: *chunked", self.head):
            return rest
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16) if size_line.strip() else 0
            if not size:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return body


async def fetch(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
    body: bytes = b"", timeout: float = 10.0,
) -> Fetched:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    begin = time.monotonic()
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    received, error, first_at = b"", None, None
    try:
        async with asyncio.timeout(timeout):
            while data := await reader.read(65536):
                if first_at is None:
                    first_at = time.monotonic() - begin
                received += data
    except OSError as exc:
        error = exc
    took = time.monotonic() - begin
    writer.close()
    return Fetched(received, error, took, first_at)


# -- one engine per target kind, in front of real servers ---------------------------------------


@dataclass
class Rig:
    engine: Engine
    path: str  # what to GET for a body of about SIZE bytes
    headers: dict[str, str]

    @property
    def port(self) -> int:
        return self.engine.services["api"].bound[1]  # type: ignore[index]

    async def get(self) -> Fetched:
        return await fetch(self.port, self.path, headers=self.headers)

    async def add(self, **fault: Any) -> None:
        await self.engine.add_fault("api", {"name": "f", **fault})

    async def newest(self, after: int = 0) -> Exchange:
        """The newest exchange once it is recorded whole (with an id past `after`)."""
        deadline = time.monotonic() + 5
        while True:
            recent = self.engine.store.recent(1)
            if recent and recent[0].id > after and recent[0].duration_ms is not None:
                return recent[0]
            if time.monotonic() > deadline:
                raise AssertionError("the exchange was not recorded")
            await asyncio.sleep(0.01)


MOCK: dict[str, Any] = {"mock": {"routes": [
    {"match": {"path": "/data"}, "respond": {"body": "m" * SIZE}},
    {"match": {"path": "/file"}, "respond": {"file": "body.bin"}},
    {"match": {"method": "POST", "path": "/upload"}, "respond": {"body": "got it"}},
]}}


@dataclass
class Box:
    """A busybox httpd container on the host network, answering SIZE bytes at /."""

    name: str
    port: int


@pytest.fixture(scope="module")
def box(docker_client: docker.DockerClient) -> Iterator[Box]:
    port = free_port()
    text = "d" * (SIZE - 1)  # and echo's newline
    script = (
        f"/bin/busybox mkdir -p /w && echo {text} > /w/index.html"
        f" && exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h /w"
    )
    container = docker_client.containers.run(
        TEST_IMAGE, ["/bin/sh", "-c", script], name=f"shaping-{RUN_ID}",
        labels={TEST_LABEL: RUN_ID}, init=True, detach=True, network_mode="host",
    )
    try:
        yield Box(container.name or "", port)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


async def _listening(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


RigFactory = Callable[[str], Any]


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, make_engine: EngineFactory, tmp_path: Path
) -> Any:
    """`await rig(kind)`: an engine whose service `api` routes to a target of that kind."""
    upstreams: list[HttpUpstream] = []

    async def factory(kind: str) -> Rig:
        headers: dict[str, str] = {}
        path = f"/bytes/{SIZE}?length=1"
        if kind in ("url", "pool", "split", "shards"):
            for name in ("a", "b"):
                upstreams.append(await HttpUpstream(name).start())
        a, b = (u.url for u in upstreams) if upstreams else ("", "")
        targets: dict[str, Any]
        if kind == "url":
            targets = {"t": a}
        elif kind == "pool":
            targets = {"t": {"endpoints": [a, b]}}
        elif kind == "split":
            targets = {"a": a, "b": b, "t": {"split": {"a": 50, "b": 50}}}
        elif kind == "shards":
            targets = {"t": {"shards": {"a": a, "b": b}, "key": "header:X-User-Id"}}
            headers["X-User-Id"] = "7"
        elif kind in ("mock", "mock-file"):
            (tmp_path / "body.bin").write_bytes(b"f" * SIZE)
            targets = {"t": MOCK}
            path = "/data" if kind == "mock" else "/file"
        elif kind == "echo":
            targets = {"t": "echo"}
            path = "/echo"
            headers["X-Pad"] = "p" * (SIZE - 500)  # echo answers with the headers: a bigger body
        else:
            assert kind == "docker"
            container: Box = request.getfixturevalue("box")
            await _listening(container.port)
            targets = {"t": {"docker": {"container": container.name, "port": container.port}}}
            path = "/"
        engine = await make_engine(f"""
        version: 1
        services:
          api:
            listen: 0
            timeout: 5s
            target: t
            targets: {json.dumps(targets)}
        """)
        return Rig(engine, path, headers)

    yield factory
    for upstream in upstreams:
        await upstream.stop()


# -- response-side faults -----------------------------------------------------------------------

Check = Callable[[Fetched, Fetched, Exchange], None]


def _intact(baseline: Fetched, got: Fetched) -> None:
    assert got.error is None and got.status == baseline.status == 200
    assert got.body == baseline.body and len(got.body) >= SIZE - 600


def slow_first_byte(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    _intact(baseline, got)
    assert got.first_at is not None and got.first_at >= 0.28


def late_end(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    _intact(baseline, got)
    assert got.took >= 0.28


def paced(seconds: Callable[[int], float]) -> Check:
    def check(baseline: Fetched, got: Fetched, record: Exchange) -> None:
        _intact(baseline, got)
        assert got.took >= seconds(len(baseline.body)) * 0.9

    return check


def cut_with_fin(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    assert got.error is None and got.status == 200  # the head came, then a plain close
    assert got.body == baseline.body[:300]
    assert record.error == "fault limit_data: closed after 300 bytes"
    assert record.bytes_out == 300


def cut_with_rst(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    assert isinstance(got.error, ConnectionResetError), got
    assert len(got.body) <= 300 and baseline.body.startswith(got.body)
    assert record.error == "fault reset after 300 bytes"


def garbage(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    assert got.received == MODES["garbage"]
    assert record.error == "fault malformed: sent a garbage response"


def aborted(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    assert got.status == 418 and got.body == b"teapot"
    assert record.status == 418


def reset_at_once(baseline: Fetched, got: Fetched, record: Exchange) -> None:
    assert isinstance(got.error, ConnectionResetError) and got.received == b""
    assert record.error == "fault reset: connection reset before the upstream"


RESPONSE_FAULTS: dict[str, tuple[dict[str, Any], Check]] = {
    "latency-on-first-byte": ({"kind": "latency", "delay": "300ms", "on": "response"},
                              slow_first_byte),
    "slow_close-at-end": ({"kind": "slow_close", "delay": "300ms"}, late_end),
    "bandwidth": ({"kind": "bandwidth", "rate": 5000}, paced(lambda n: n / 5000)),
    "slicer": ({"kind": "slicer", "size": 500, "delay": "100ms"},
               paced(lambda n: math.ceil(n / 500) * 0.1)),
    "limit_data": ({"kind": "limit_data", "bytes": 300}, cut_with_fin),
    "reset-after-bytes": ({"kind": "reset", "after_bytes": 300}, cut_with_rst),
    "malformed": ({"kind": "malformed", "mode": "garbage"}, garbage),
    "abort": ({"kind": "abort", "status": 418, "body": "teapot"}, aborted),
    "reset": ({"kind": "reset"}, reset_at_once),
}


@pytest.mark.parametrize("fault", RESPONSE_FAULTS)
@pytest.mark.parametrize("kind", KINDS)
async def test_response_fault_takes_effect(kind: str, fault: str, rig: RigFactory) -> None:
    setup: Rig = await rig(kind)
    baseline = await setup.get()
    assert baseline.error is None and baseline.status == 200, baseline
    before = await setup.newest()
    spec, check = RESPONSE_FAULTS[fault]
    await setup.add(**spec)
    got = await setup.get()
    record = await setup.newest(before.id)
    assert record.faults == ["f"]
    check(baseline, got, record)


async def test_latency_and_bandwidth_on_echo_take_time_as_on_a_url(rig: RigFactory) -> None:
    """The issue's case: both faults listed as fired, and the answer came at once."""
    setup: Rig = await rig("echo")
    baseline = await setup.get()
    await setup.add(kind="latency", delay="200ms", on="response")
    await setup.engine.add_fault("api", {"name": "g", "kind": "bandwidth", "rate": 5000})
    got = await setup.get()
    _intact(baseline, got)
    assert got.first_at is not None and got.first_at >= 0.18
    assert got.took >= 0.18 + len(got.body) / 5000 * 0.9
    record = await setup.newest()
    assert sorted(record.faults) == ["f", "g"]
    assert record.duration_ms is not None and record.duration_ms >= 180 + len(got.body) / 5 * 0.9


@pytest.mark.parametrize("kind", ("mock", "url"))
async def test_slow_close_delays_a_known_length_body_for_a_keep_alive_client(
    kind: str, rig: RigFactory
) -> None:
    """A client that reads by Content-Length and keeps the connection sees the end late: the
    body's last byte waits for the end (a delayed close alone would go unnoticed)."""
    setup: Rig = await rig(kind)
    await setup.add(kind="slow_close", delay="300ms")
    url = f"http://127.0.0.1:{setup.port}{setup.path}"
    async with aiohttp.ClientSession() as client:
        begin = time.monotonic()
        async with client.get(url, headers=setup.headers) as response:
            assert response.content_length == SIZE
            body = await response.read()
        took = time.monotonic() - begin
    assert len(body) == SIZE and took >= 0.28


async def test_a_chunked_answer_keeps_its_framing_when_cut(rig: RigFactory) -> None:
    setup: Rig = await rig("url")
    setup.path = f"/bytes/{SIZE}"  # no Content-Length: chunked
    baseline = await setup.get()
    assert b"chunked" in baseline.head.lower()
    await setup.add(kind="limit_data", bytes=300)
    got = await setup.get()
    assert got.body == baseline.body[:300] and got.error is None


async def test_devamb_s_own_error_answer_is_shaped_too(make_engine: EngineFactory) -> None:
    """A 502 devamb makes itself reaches the client over the same slow network."""
    engine = await make_engine(f"""
    version: 1
    services:
      api:
        listen: 0
        target: gone
        targets:
          gone: http://127.0.0.1:{free_port()}
    """)
    await engine.add_fault("api", {"name": "f", "kind": "latency", "delay": "300ms",
                                   "on": "response"})
    got = await fetch(engine.services["api"].bound[1], "/x")  # type: ignore[index]
    assert got.status == 502 and got.first_at is not None and got.first_at >= 0.28
    assert b"connect-failed" in got.body


# -- request-side (upload) faults ---------------------------------------------------------------

UPLOAD = bytes(range(256)) * 8  # 2048 bytes


def _answered(kind: str, got: Fetched) -> None:
    assert got.error is None and got.status == 200, got
    if kind == "mock":
        assert got.body == b"got it"
    else:
        assert json.loads(got.body)["body_size"] == len(UPLOAD)


UPLOAD_FAULTS: dict[str, dict[str, Any]] = {
    "bandwidth": {"kind": "bandwidth", "rate": 5000, "direction": "upstream"},
    "slicer": {"kind": "slicer", "size": 512, "delay": "100ms", "direction": "upstream"},
    "limit_data": {"kind": "limit_data", "bytes": 300, "direction": "upstream"},
    "reset-after-bytes": {"kind": "reset", "after_bytes": 300, "direction": "upstream"},
}


@pytest.mark.parametrize("fault", UPLOAD_FAULTS)
@pytest.mark.parametrize("kind", ("echo", "mock", "url"))
async def test_upload_fault_takes_effect(kind: str, fault: str, rig: RigFactory) -> None:
    setup: Rig = await rig(kind)
    path = {"echo": "/echo", "mock": "/upload", "url": "/inspect"}[kind]
    baseline = await fetch(setup.port, path, method="POST", body=UPLOAD)
    _answered(kind, baseline)
    before = await setup.newest()
    await setup.add(**UPLOAD_FAULTS[fault])
    got = await fetch(setup.port, path, method="POST", body=UPLOAD)
    record = await setup.newest(before.id)
    assert record.faults == ["f"]
    if fault == "bandwidth":
        _answered(kind, got)
        assert got.took >= len(UPLOAD) / 5000 * 0.9
    elif fault == "slicer":
        _answered(kind, got)
        assert got.took >= 4 * 0.1 * 0.9
    elif fault == "limit_data":
        assert got.status is None  # cut before any answer
        assert record.error == "fault limit_data: closed after 300 bytes"
        assert record.bytes_in <= 300
    else:
        assert isinstance(got.error, ConnectionResetError) and got.status is None, got
        assert record.error == "fault reset after 300 bytes"


# -- the shipped profile ------------------------------------------------------------------------


async def test_faults_yaml_trickle_visibly_trickles(tmp_path: Path) -> None:
    text = (REPO / "profiles" / "faults.yaml").read_text()
    local = re.sub(r"(?m)^(\s+listen:) 930\d\b", r"\1 0", text)  # free ports, not 9301/9302
    assert local.count("listen: 0") == 2
    path = tmp_path / "faults.yaml"
    path.write_text(local)
    engine = Engine(load_profile(path))
    await engine.start()
    try:
        port = engine.services["payments"].bound[1]  # type: ignore[index]
        baseline = await fetch(port, "/orders")  # (not /charge*: not slowed)
        assert baseline.status == 200 and baseline.error is None
        await engine.set_fault("payments", "trickle", True)
        got = await fetch(port, "/orders")
        assert got.status == 200 and got.body == baseline.body
        assert len(got.body) >= 150  # an echo answer: a few hundred bytes
        assert got.took >= len(got.body) / 100 * 0.9  # 100 bytes a second: visibly, seconds
        record = engine.store.recent(1)[0]
        assert record.faults == ["trickle"]
    finally:
        await engine.stop()
