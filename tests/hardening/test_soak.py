"""Integrity soak: many HTTP exchanges and TCP sessions with checksums both ways, through a real
engine process, while targets switch and faults toggle every few hundred milliseconds.

Asserted: no corrupted byte ever; every failure is explained by an injected fault (the abort's
status and `x-devamb-fault` header, or the engine's record of the exchange naming the fault);
engine RSS flat after warm-up. `DEVAMB_SOAK=long` runs ten times as much.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.hardening.engine_process import EngineProcess, needs_proc
from tests.upstreams import serve_app

LONG = os.environ.get("DEVAMB_SOAK") == "long"
HTTP_EXCHANGES = int(os.environ.get("DEVAMB_SOAK_HTTP", "20000"))
TCP_SESSIONS = int(os.environ.get("DEVAMB_SOAK_TCP", "2000"))
HTTP_WORKERS = 13
TCP_WORKERS = 3
ABORT_STATUS = 555
RSS_MARGIN = 25 * 1024 * 1024
KiB, MiB = 1024, 1024 * 1024
MAX_SIZE = 8 * MiB
WRITE_CHUNK = 256 * KiB

# Deterministic bytes: a body is a slice of BASE starting at an offset derived from its seed.
BASE = random.Random(20240601).randbytes(MAX_SIZE + 65536)


def payload(seed: int, size: int) -> memoryview:
    offset = seed % 65536
    return memoryview(BASE)[offset : offset + size]


def digest(seed: int, size: int) -> str:
    return hashlib.sha256(payload(seed, size)).hexdigest()


def body_size(rng: random.Random) -> int:
    """0 B to 8 MiB, skewed: most bodies are small, a few are large."""
    r = rng.random()
    if r < 0.10:
        return 0
    if r < 0.75:
        return rng.randint(1, 2 * KiB)
    if r < 0.965:
        return rng.randint(2 * KiB, 128 * KiB)
    if r < 0.998:
        return rng.randint(128 * KiB, 1 * MiB)
    return rng.randint(1 * MiB, MAX_SIZE)


# -- upstreams ---------------------------------------------------------------------------------


async def _http_handler(request: web.Request) -> web.StreamResponse:
    received = hashlib.sha256()
    got = 0
    async for chunk in request.content.iter_any():
        received.update(chunk)
        got += len(chunk)
    seed, size = int(request.headers["x-seed"]), int(request.headers["x-size"])
    response = web.StreamResponse(
        headers={
            "x-got-sha256": received.hexdigest(),
            "x-got-size": str(got),
            "x-upstream": request.app["name"],
        }
    )
    if seed % 2 and request.method != "HEAD":
        response.content_length = size  # half framed by length, half chunked
    await response.prepare(request)
    if request.method != "HEAD":
        body = payload(seed, size)
        for start in range(0, size, WRITE_CHUNK):
            await response.write(body[start : start + WRITE_CHUNK])
    await response.write_eof()
    return response


async def _http_upstream(name: str) -> tuple[web.AppRunner, int]:
    app = web.Application(client_max_size=MAX_SIZE * 2)
    app["name"] = name
    app.router.add_route("*", "/{tail:.*}", _http_handler)
    return await serve_app(app, access_log=None, shutdown_timeout=0.5)


TCP_HEAD = struct.Struct("!QI")  # seed, response size


async def _tcp_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads a head and a body until EOF; answers the body's digest then seeded bytes."""
    try:
        head = await reader.readexactly(TCP_HEAD.size)
        seed, size = TCP_HEAD.unpack(head)
        received, got = hashlib.sha256(), 0
        while chunk := await reader.read(WRITE_CHUNK):
            received.update(chunk)
            got += len(chunk)
        writer.write(received.digest() + struct.pack("!Q", got))
        body = payload(seed, size)
        for start in range(0, size, WRITE_CHUNK):
            writer.write(body[start : start + WRITE_CHUNK])
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


# -- the run -----------------------------------------------------------------------------------

PROFILE = """
version: 1
services:
  web:
    listen: 0
    target: a
    timeout: 60s
    targets:
      a: http://127.0.0.1:{a}
      b: http://127.0.0.1:{b}
    faults:
      slow: {{kind: latency, delay: 5ms, jitter: 5ms, enabled: false}}
      abort: {{kind: abort, status: {abort}, probability: 0.3, enabled: false}}
      reset: {{kind: reset, probability: 0.2, enabled: false}}
  raw:
    listen: 0
    protocol: tcp
    target: a
    timeout: 30s
    targets:
      a: tcp://127.0.0.1:{ta}
      b: tcp://127.0.0.1:{tb}
    faults:
      slow: {{kind: latency, delay: 2ms, enabled: false}}
      reset: {{kind: reset, probability: 0.2, enabled: false}}
"""


@dataclass
class Tally:
    ok: int = 0
    aborted: int = 0  # answered by the abort fault: status and header say so
    explained: int = 0  # failed, and the engine's record names the fault that did it
    corrupted: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    upstreams: set[str] = field(default_factory=set)
    bytes: int = 0


class Soak:
    def __init__(self, engine: EngineProcess, seed: int, http_total: int, tcp_total: int) -> None:
        self.engine = engine
        self.http_total = http_total
        self.tcp_total = tcp_total
        self.rng = random.Random(seed)
        self.http = Tally()
        self.tcp = Tally()
        self.http_next = 0
        self.tcp_next = 0
        self.rss: dict[str, int] = {}
        self.chaos_steps = 0
        self.done = asyncio.Event()

    # -- accounting of failures through the engine's records ----------------------------------

    async def _explain(
        self, tally: Tally, what: str, filter_text: str, match: Callable[[dict], bool]
    ) -> None:
        """A failed exchange counts only if the engine recorded an injected fault for it."""
        for _ in range(40):
            await asyncio.sleep(0.05)
            records = await self.engine.control.exchanges(limit=50, filter=filter_text)
            records = [r for r in records if match(r)]
            if any({"abort", "reset"} & set(r.get("faults", ())) for r in records):
                tally.explained += 1
                return
        tally.unexplained.append(f"{what}: records {records}")

    # -- HTTP ----------------------------------------------------------------------------------

    async def http_worker(self, url: str, session: aiohttp.ClientSession) -> None:
        rng = random.Random(self.rng.random())
        while self.http_next < self.http_total:
            n = self.http_next
            self.http_next += 1
            if n == self.http_total // 4:
                self.rss["25%"] = self.engine.rss_bytes()
            await self._one_http(url, session, rng, n)
        self.rss.setdefault("100%", self.engine.rss_bytes())

    async def _one_http(
        self, url: str, session: aiohttp.ClientSession, rng: random.Random, n: int
    ) -> None:
        method = rng.choice(("GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE", "HEAD"))
        send = body_size(rng) if method in ("POST", "PUT", "PATCH", "DELETE") else 0
        size, seed_in, seed_out = body_size(rng), rng.getrandbits(32), rng.getrandbits(32)
        data: object = None
        if send:
            body = payload(seed_in, send)
            if rng.random() < 0.5:
                data = bytes(body)
            else:

                async def chunks(body: memoryview = body) -> object:
                    for start in range(0, len(body), 100_000):
                        yield bytes(body[start : start + 100_000])

                data = chunks()
        path = f"/soak/r{n}x"
        headers = {"x-seed": str(seed_out), "x-size": str(size)}
        what = f"{method} {path} (sent {send}, asked {size})"
        try:
            async with session.request(method, url + path, data=data, headers=headers) as resp:
                received, got = hashlib.sha256(), 0
                async for chunk in resp.content.iter_any():
                    received.update(chunk)
                    got += len(chunk)
                status, rheaders = resp.status, resp.headers
        except (aiohttp.ClientError, ConnectionError) as exc:
            await self._explain(
                self.http, f"{what}: {exc!r}", f"~u /soak/r{n}x$", lambda r: True
            )
            return
        if status == ABORT_STATUS and rheaders.get("x-devamb-fault") == "abort":
            self.http.aborted += 1
            return
        if status != 200:
            await self._explain(self.http, f"{what}: {status}", f"~u /soak/r{n}x$", lambda r: True)
            return
        self.http.upstreams.add(rheaders["x-upstream"])
        expect_size = 0 if method == "HEAD" else size
        if rheaders["x-got-size"] != str(send) or rheaders["x-got-sha256"] != digest(
            seed_in, send
        ):
            self.http.corrupted.append(f"{what}: request body arrived altered ({rheaders})")
        elif got != expect_size or received.hexdigest() != digest(seed_out, expect_size):
            self.http.corrupted.append(f"{what}: response body altered ({got} bytes)")
        else:
            self.http.ok += 1
            self.http.bytes += send + got

    # -- TCP -----------------------------------------------------------------------------------

    async def tcp_worker(self, host: str, port: int) -> None:
        rng = random.Random(self.rng.random())
        while self.tcp_next < self.tcp_total:
            n = self.tcp_next
            self.tcp_next += 1
            await self._one_tcp(host, port, rng, n)

    async def _one_tcp(self, host: str, port: int, rng: random.Random, n: int) -> None:
        # Each session comes from its own loopback address, so its record can be told apart.
        client_ip = f"127.{10 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"
        send = min(body_size(rng), 512 * KiB)
        size = min(body_size(rng), 512 * KiB)
        seed_in, seed_out = rng.getrandbits(32), rng.getrandbits(32)
        what = f"tcp session {n} from {client_ip} (sent {send}, asked {size})"
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(client_ip, 0))
        except OSError as exc:
            await self._explain(self.tcp, f"{what}: {exc!r}", "~s raw",
                                lambda r: r["client"] == client_ip)
            return
        try:
            writer.write(TCP_HEAD.pack(seed_out, size))
            body = payload(seed_in, send)
            for start in range(0, send, WRITE_CHUNK):
                writer.write(body[start : start + WRITE_CHUNK])
                await writer.drain()
            writer.write_eof()
            answer = await reader.read()
        except (ConnectionError, OSError) as exc:
            answer = None
            failure = repr(exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if answer is None or len(answer) < 40:
            why = failure if answer is None else f"{len(answer or b'')} bytes then the end"
            await self._explain(self.tcp, f"{what}: {why}", "~s raw",
                                lambda r: r["client"] == client_ip)
            return
        got_digest, got_size = answer[:32], struct.unpack("!Q", answer[32:40])[0]
        if got_size != send or got_digest != hashlib.sha256(payload(seed_in, send)).digest():
            self.tcp.corrupted.append(f"{what}: request bytes arrived altered")
        elif answer[40:] != payload(seed_out, size):
            self.tcp.corrupted.append(f"{what}: response bytes altered ({len(answer) - 40})")
        else:
            self.tcp.ok += 1
            self.tcp.bytes += send + size

    # -- chaos ---------------------------------------------------------------------------------

    async def chaos(self) -> None:
        """Every 100-400 ms: switch a service's target or toggle one of its faults."""
        rng = random.Random(self.rng.random())
        control = self.engine.control
        enabled: dict[tuple[str, str], bool] = {}
        active = {"web": "a", "raw": "a"}
        moves = [("web", "slow"), ("web", "abort"), ("web", "reset"), ("raw", "slow"),
                 ("raw", "reset"), ("web", None), ("raw", None)]
        while not self.done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), rng.uniform(0.1, 0.4))
            service, fault = rng.choice(moves)
            if fault is None:
                active[service] = "b" if active[service] == "a" else "a"
                await control.switch(service, active[service])
            else:
                key = (service, fault)
                enabled[key] = not enabled.get(key, False)
                await control.set_fault(service, fault, enabled[key])
            self.chaos_steps += 1


@needs_proc
@pytest.mark.timeout(300)
async def test_integrity_soak(tmp_path: Path) -> None:
    await _soak(tmp_path, HTTP_EXCHANGES, TCP_SESSIONS)


@needs_proc
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not LONG, reason="the long soak runs with DEVAMB_SOAK=long")
async def test_integrity_soak_long(tmp_path: Path) -> None:
    await _soak(tmp_path, 10 * HTTP_EXCHANGES, 10 * TCP_SESSIONS)


async def _soak(tmp_path: Path, http_total: int, tcp_total: int) -> None:
    runners = []
    http_ports = []
    for name in ("a", "b"):
        runner, port = await _http_upstream(name)
        runners.append(runner)
        http_ports.append(port)
    tcp_servers = [await asyncio.start_server(_tcp_handler, "127.0.0.1", 0) for _ in range(2)]
    tcp_ports = [s.sockets[0].getsockname()[1] for s in tcp_servers]
    engine = EngineProcess(
        tmp_path,
        PROFILE.format(a=http_ports[0], b=http_ports[1], ta=tcp_ports[0], tb=tcp_ports[1],
                       abort=ABORT_STATUS),
    )
    try:
        await engine.start()
        host, port = await engine.address("web")
        raw_host, raw_port = await engine.address("raw")
        seed = int(os.environ.get("DEVAMB_SOAK_SEED", "7"))
        soak = Soak(engine, seed, http_total, tcp_total)
        connector = aiohttp.TCPConnector(limit=HTTP_WORKERS, force_close=False)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            chaos = asyncio.create_task(soak.chaos())
            url = f"http://{host}:{port}"
            await asyncio.gather(
                *(soak.http_worker(url, session) for _ in range(HTTP_WORKERS)),
                *(soak.tcp_worker(raw_host, raw_port) for _ in range(TCP_WORKERS)),
            )
            soak.done.set()
            await chaos
        http, tcp = soak.http, soak.tcp
        print(
            f"\nsoak: http ok={http.ok} aborted={http.aborted} explained={http.explained} "
            f"bytes={http.bytes} upstreams={sorted(http.upstreams)}; tcp ok={tcp.ok} "
            f"explained={tcp.explained} bytes={tcp.bytes}; chaos steps={soak.chaos_steps}; "
            f"rss 25%={soak.rss['25%'] / MiB:.1f} MiB 100%={soak.rss['100%'] / MiB:.1f} MiB"
        )
        assert http.corrupted == [] and tcp.corrupted == []
        assert http.unexplained == [] and tcp.unexplained == []
        assert http.ok + http.aborted + http.explained == http_total
        assert tcp.ok + tcp.explained == tcp_total
        # The faults really fired and the switches really happened, and most traffic got through.
        assert http.aborted > 0 and http.explained > 0 and tcp.explained > 0
        assert http.upstreams == {"a", "b"}
        assert http.ok > http_total // 2 and tcp.ok > tcp_total // 2
        assert soak.rss["100%"] - soak.rss["25%"] <= RSS_MARGIN, soak.rss
        assert "Traceback" not in engine.log(), engine.log()[-5000:]
    finally:
        await engine.close()
        for server in tcp_servers:
            server.close()
        for runner in runners:
            await runner.cleanup()
