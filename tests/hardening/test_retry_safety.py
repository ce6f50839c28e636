"""Retries that are safe and useful: a request that may have reached the upstream is never sent
again unless its method is idempotent, and a retry goes to another endpoint of a pool."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import EngineFactory, listen_url
from tests.hardening.raw_upstream import RawUpstream, read_body, read_head, rst
from tests.replicas import Replica

# -- a reused keep-alive connection that the upstream resets ----------------------------------


class CountingUpstream(RawUpstream):
    """Answers the first request on each connection (kept alive); reads the second whole,
    counts it, then resets the connection — as a server that died mid-request would."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.handler = self._handle

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            head = await read_head(reader)
            await read_body(reader, head)
            method, path, _ = head.split(b" ", 2)
            self.seen[f"{method.decode()} {path.decode()}"] += 1
            if served == 1:
                rst(writer)
                return
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()


@pytest.fixture
async def counting() -> AsyncIterator[CountingUpstream]:
    server = CountingUpstream()
    await server.start()
    yield server
    await server.stop()


def reset_profile(port: int, policy: str) -> str:
    return f"""
    version: 1
    services:
      api:
        listen: 0
        timeout: 5s
        target: up
        targets: {{up: "http://127.0.0.1:{port}"}}
        {policy}
    """


POLICIES = ["", "retries: {attempts: 1}", "retries: {attempts: 3, on: [reset], backoff: 1ms}"]


@pytest.mark.parametrize("policy", POLICIES, ids=["no-retries", "attempts-1", "retries-on-reset"])
async def test_a_post_on_a_reset_reused_connection_is_not_sent_again(
    make_engine: EngineFactory, counting: CountingUpstream, policy: str
) -> None:
    engine = await make_engine(reset_profile(counting.port, policy))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/warm") as resp:  # leaves a kept-alive upstream connection
            assert resp.status == 200
        async with client.post(url + "/charge", data=b"",
                               headers={"Content-Length": "0"}) as resp:
            assert resp.status == 502, await resp.text()
            assert resp.headers["x-devamb-error"] == "upstream-closed"
    assert counting.seen["POST /charge"] == 1, counting.seen  # charged once, not twice
    [record] = [e for e in engine.store.all() if e.path == "/charge"]
    assert record.status == 502 and record.attempts == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_request_on_a_reset_reused_connection_goes_again(
    make_engine: EngineFactory, counting: CountingUpstream, method: str
) -> None:
    engine = await make_engine(reset_profile(counting.port, ""))
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/warm") as resp:
            assert resp.status == 200
        async with client.request(method, url + "/again") as resp:
            assert resp.status == 200 and await resp.read() == b"ok"
    assert counting.seen[f"{method} /again"] == 2  # the reset one, then on a fresh connection
    assert counting.accepted == 2


class ResettingUpstream(RawUpstream):
    """Answers the very first request (kept alive), then resets every connection at its next
    request: the retry of a request sent on a reset kept-alive connection is reset too."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.answered = False
        self.handler = self._handle

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            await read_body(reader, head)
            method, path, _ = head.split(b" ", 2)
            self.seen[f"{method.decode()} {path.decode()}"] += 1
            if self.answered:
                rst(writer)
                return
            self.answered = True
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()


async def test_a_request_goes_again_once_only(make_engine: EngineFactory) -> None:
    """The reused connection's attempt and one on a fresh connection, not a third: the fresh
    one's reset is the client's 502."""
    upstream = await ResettingUpstream().start()
    try:
        engine = await make_engine(reset_profile(upstream.port, ""))
        url = listen_url(engine, "api")
        async with aiohttp.ClientSession() as client:
            async with client.get(url + "/warm") as resp:
                assert resp.status == 200
            async with client.get(url + "/again") as resp:
                assert resp.status == 502, await resp.text()
                assert resp.headers["x-devamb-error"] == "upstream-closed"
        assert upstream.seen["GET /again"] == 2, upstream.seen
        assert upstream.accepted == 2
    finally:
        await upstream.stop()


class SilentSecond(RawUpstream):
    """Answers the first request on a connection, then reads the next and never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.handler = self._handle

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        await reader.read()  # silent until the engine gives up and closes


async def test_a_silent_reused_connection_is_a_timeout_not_a_retry(
    make_engine: EngineFactory,
) -> None:
    upstream = await SilentSecond().start()
    try:
        engine = await make_engine(reset_profile(upstream.port, "").replace("5s", "300ms"))
        url = listen_url(engine, "api")
        async with aiohttp.ClientSession() as client:
            async with client.get(url + "/warm") as resp:
                assert resp.status == 200
            async with client.get(url + "/slow") as resp:
                assert resp.status == 504, await resp.text()
                assert resp.headers["x-devamb-error"] == "timeout"
        assert upstream.accepted == 1  # not sent again on a fresh connection
        [record] = [e for e in engine.store.all() if e.path == "/slow"]
        assert record.status == 504
    finally:
        await upstream.stop()


# -- pool retries go elsewhere ---------------------------------------------------------------


@pytest.fixture
async def one_failing() -> AsyncIterator[tuple[Replica, Replica]]:
    bad, good = await Replica("bad").start(), await Replica("good").start()
    bad.status = 503
    good.delay = 0.01  # slower than the failing one, so least_requests favours the failing one
    yield bad, good
    await bad.stop()
    await good.stop()


@pytest.mark.parametrize("balance", ["round_robin", "least_requests", "random", "hash"])
async def test_a_retry_goes_to_another_endpoint(
    make_engine: EngineFactory, one_failing: tuple[Replica, Replica], balance: str
) -> None:
    bad, good = one_failing
    # hash: 50 users, so that some land on the failing endpoint whatever ports the ring hashes
    # (with 7, all of them sometimes hashed to the good one, and nothing was retried)
    hash_on = "\n            hash_on: header:X-User" if balance == "hash" else ""
    engine = await make_engine(f"""
    version: 1
    services:
      api:
        listen: 0
        timeout: 10s
        retries: {{attempts: 2, on: [503], backoff: 1ms, max_backoff: 1ms, budget: 10}}
        target: replicas
        targets:
          replicas:
            endpoints: [{bad.url}, {good.url}]
            balance: {balance}{hash_on}
    """)
    url = listen_url(engine, "api")
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as client:

        async def one(i: int) -> None:
            async with client.get(url + f"/r{i}", headers={"X-User": f"u{i % 50}"}) as resp:
                await resp.read()
                statuses[resp.status] += 1

        for start in range(0, 200, 20):  # 20 at a time: least_requests sees exchanges in flight
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(start, start + 20))), 30)
    assert statuses == {200: 200}, statuses  # every first try that met the 503 went elsewhere
    retried = [e for e in engine.store.all() if e.attempts == 2]
    assert retried and all(good.url in (e.url or "") for e in retried)
    assert bad.requests == len(retried)
