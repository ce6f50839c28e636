"""A mirror that fails is counted as failing, and its copies stay out of the service's own
numbers; a health check reads the whole answer, so a body cut short fails it.

Real upstreams on 127.0.0.1 port 0 (an HTTP server, raw sockets that answer 502 or cut a body
short) and a real in-process engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from devamb.cluster.endpoint import Endpoint
from devamb.cluster.health import check_http
from devamb.engine.core import Engine
from devamb.engine.metrics import render
from devamb.targets.split import SplitTarget
from tests.conftest import EngineFactory, free_port, listen_url
from tests.replicas import eventually
from tests.upstreams import HttpUpstream

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawHttp:
    """A server that reads each request head and answers with `answer` (the test's bytes)."""

    def __init__(self, answer: bytes, *, close: bool = False) -> None:
        self.answer = answer
        self.close = close  # close after the answer (a body framed by the close, or cut short)
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                writer.write(self.answer)
                await writer.drain()
                if self.close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawHttp:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"


@pytest.fixture
async def local() -> AsyncIterator[HttpUpstream]:
    server = await HttpUpstream("local").start()
    yield server
    await server.stop()


def mirrored(local: str, shadow: str, timeout: str = "5s") -> str:
    return f"""
        version: 1
        name: mirror
        services:
          api:
            listen: 0
            target: canary
            timeout: {timeout}
            targets:
              local: {local}
              shadow: {shadow}
              canary: {{split: {{local: 1}}, mirror: shadow}}
        """


def split_of(engine: Engine) -> SplitTarget:
    target = engine.services["api"].targets["canary"]
    assert isinstance(target, SplitTarget)
    return target


async def send(engine: Engine, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(listen_url(engine, "api") + "/orders") as response:
                assert response.status == 200  # the app sees the member's answer only
                await response.read()


@pytest.mark.parametrize("shadow", ["answers 502", "refuses", "never answers"])
async def test_a_failing_mirror_counts_failures_and_not_in_the_services_stats(
    make_engine: EngineFactory, local: HttpUpstream, shadow: str
) -> None:
    answer = b"" if shadow == "never answers" else BAD_GATEWAY
    async with RawHttp(answer) as bad:
        shadow_url = bad.url if shadow != "refuses" else f"http://127.0.0.1:{free_port()}"
        engine = await make_engine(mirrored(local.url, shadow_url, timeout="1s"))
        await send(engine, 5)
        split = split_of(engine)
        await eventually(lambda: split.mirror.failures == 5, timeout=20, what="5 failed copies")
        mirror = split.details()["mirror"]
        assert mirror["sent"] == 0 and mirror["failed"] == 5
        status = "504 (timeout)" if shadow == "never answers" else "502"
        assert mirror["last_failure"].startswith(f"answered {status}")
        if shadow != "refuses":
            assert bad.requests == 5  # the copies did reach it
        service = engine.services["api"]
        await eventually(lambda: service.counters.active == 0, what="the copies to finish")
        assert service.counters.mirror is not None
        await eventually(lambda: service.counters.mirror.active == 0, what="copies recorded")
        stats = service.counters.snapshot()
        # the service's own numbers are what its clients saw: 5 requests, no error
        assert stats["requests"] == 5 and stats["errors"] == 0 and stats["error_rate"] == 0.0
        assert service.counters.per_target == {"canary": 5}
        copies = stats["mirror"]  # type: ignore[typeddict-item]
        assert copies["requests"] == 5 and copies["errors"] == 5 and copies["active"] == 0
        # status, metrics and the record say the same
        [svc] = (await engine.status())["services"]
        assert svc["stats"]["requests"] == 5 and svc["stats"]["mirror"]["errors"] == 5
        metrics = render(engine.services.values())
        assert 'devamb_requests_total{service="api"} 5' in metrics
        assert 'devamb_errors_total{service="api"} 0' in metrics
        assert 'devamb_mirror_errors_total{service="api"} 5' in metrics
        recorded = engine.store.all()
        assert len(recorded) == 10
        assert sum(1 for e in recorded if e.notes.get("mirror_of")) == 5


async def test_an_answering_mirror_is_sent_and_counted_apart(
    make_engine: EngineFactory, local: HttpUpstream
) -> None:
    shadow = await HttpUpstream("shadow").start()
    try:
        engine = await make_engine(mirrored(local.url, shadow.url))
        await send(engine, 3)
        split = split_of(engine)
        await eventually(lambda: split.mirror.sent == 3, what="three answered copies")
        assert split.mirror.failures == 0
        counters = engine.services["api"].counters
        await eventually(lambda: counters.active == 0, what="the copies to finish")
        assert counters.requests == 3 and counters.mirror is not None
        assert counters.mirror.requests == 3 and counters.mirror.errors == 0
    finally:
        await shadow.stop()


# -- health checks read the whole answer --------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "close", "failure"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", True,
         "GET /healthz: the response was cut short (the connection closed after 5 bytes of its "
         "body)"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", True,
         "GET /healthz: the response was cut short (the connection closed after 5 bytes of its "
         "body)"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", True,
         "GET /healthz: the connection closed before a whole response head"),
        (b"", True, "GET /healthz: the connection closed before a whole response head"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", True, "GET /healthz: not an HTTP response"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
         False, "GET /healthz: switched protocols (101)"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False,
         None),
        (b"HTTP/1.1 200 OK\r\n\r\nup to the close", True, None),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", False, None),
        (b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n", False,
         "GET /healthz answered 503"),
    ],
    ids=["short-length", "short-chunked", "short-head", "nothing", "not-http", "101", "whole",
         "whole-chunked", "close-framed", "100-then-204", "503"],
)
async def test_a_health_check_reads_the_whole_body(
    answer: bytes, close: bool, failure: str | None
) -> None:
    async with RawHttp(answer, close=close) as server:
        endpoint = Endpoint.from_url(server.url)
        assert await check_http(endpoint, "/healthz", 5.0, None) == failure


async def test_a_body_that_never_ends_times_out() -> None:
    async with RawHttp(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello") as server:
        endpoint = Endpoint.from_url(server.url)  # (the server keeps the connection open)
        assert await check_http(endpoint, "/h", 0.2, None) == "no answer to GET /h within 0.2s"


async def test_a_pool_takes_out_an_endpoint_whose_health_answer_is_cut_short(
    make_engine: EngineFactory, local: HttpUpstream
) -> None:
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello"
    async with RawHttp(truncated, close=True) as broken:
        engine = await make_engine(f"""
            version: 1
            name: health
            services:
              api:
                listen: 0
                targets:
                  pool:
                    endpoints: [{local.url}, {broken.url}]
                    health: {{path: /healthz, interval: 50ms, timeout: 2s}}
            """)

        async def endpoints() -> dict[str, dict]:
            [svc] = (await engine.status())["services"]
            [pool] = svc["targets"]
            return {e["address"]: e for e in pool["details"]["endpoints"]}

        async def decided() -> bool:
            return all(e["state"] != "unknown" for e in (await endpoints()).values())

        await eventually(decided, timeout=10, what="the first checks")
        found = await endpoints()
        bad = found[f"127.0.0.1:{broken.port}"]
        assert bad["state"] == "unhealthy"
        assert "cut short" in bad["health_reason"]
        assert found[f"127.0.0.1:{local.port}"]["state"] == "healthy"
