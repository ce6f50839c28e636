"""Engine process lifecycle: SIGTERM drains in-flight exchanges then exits cleanly; file
descriptors do not leak over many connections. (SIGKILL + restart and a taken port are in
tests/cli/test_cli.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import struct
import time
from pathlib import Path

import pytest

from devamb.service.http import SHUTDOWN_GRACE
from tests.hardening.engine_process import EngineProcess, needs_proc
from tests.upstreams import HttpUpstream, echo_bytes, pattern_digest

pytestmark = needs_proc
LONG = os.environ.get("DEVAMB_SOAK") == "long"
CONNECTIONS = 100_000 if LONG else 10_000
FD_SLACK = 20  # idle keep-alive connections to upstreams may differ by a few between samples

PROFILE = """
version: 1
services:
  web:
    listen: 0
    targets: {{up: "{http}"}}
  raw:
    listen: 0
    protocol: tcp
    targets: {{up: "tcp://127.0.0.1:{tcp}"}}
"""


@pytest.fixture
async def engine(tmp_path: Path, upstream: HttpUpstream):
    echo = await asyncio.start_server(echo_bytes, "127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    process = EngineProcess(tmp_path, PROFILE.format(http=upstream.url, tcp=port))
    await process.start()
    yield process
    await process.close()
    echo.close()


async def test_sigterm_lets_the_download_in_flight_finish(engine: EngineProcess) -> None:
    host, port = await engine.address("web")
    total = 12 * 65536  # 12 chunks, 0.15 s apart: about 1.8 s, inside the shutdown grace
    assert SHUTDOWN_GRACE > 12 * 0.15
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /bytes/{total}?delay=0.15&length=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    body = await asyncio.wait_for(reader.readexactly(65536), 5)  # the download is under way
    started = time.monotonic()
    engine.proc.send_signal(15)  # type: ignore[union-attr]
    body += await asyncio.wait_for(reader.readexactly(total - len(body)), SHUTDOWN_GRACE + 2)
    assert hashlib.sha256(body).hexdigest() == pattern_digest(total)
    assert await asyncio.wait_for(engine.proc.wait(), 15) == 0  # type: ignore[union-attr]
    assert time.monotonic() - started < SHUTDOWN_GRACE + 5
    assert not engine.workdir.socket.exists() and not engine.workdir.pid.exists()
    writer.close()


async def _http_connection(host: str, port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if n % 5 == 0:
            return  # connect and go: nothing sent
        if n % 5 == 1:  # a head cut short, then gone with a reset
            writer.write(b"GET /x HTTP/1.1\r\nHost:")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        writer.write(f"GET /c{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    finally:
        writer.close()


async def _tcp_connection(host: str, port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if n % 4 == 0:
            return
        data = random.randbytes(n % 3000 + 1)
        writer.write(data)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == data
    finally:
        writer.close()


async def _churn(engine: EngineProcess, count: int, concurrency: int = 16) -> None:
    web = await engine.address("web")
    raw = await engine.address("raw")
    next_n = 0

    async def worker() -> None:
        nonlocal next_n
        while next_n < count:
            n = next_n
            next_n += 1
            if n % 2:
                await _http_connection(*web, n // 2)
            else:
                await _tcp_connection(*raw, n // 2)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@pytest.mark.timeout(1800 if LONG else 300)
async def test_file_descriptors_do_not_leak(engine: EngineProcess) -> None:
    await _churn(engine, 500)  # warm-up: pools, caches, lazy imports
    await asyncio.sleep(0.5)
    before = engine.fd_count()
    await _churn(engine, CONNECTIONS)
    after = engine.fd_count()
    for _ in range(50):  # closes still in progress settle
        if after <= before + FD_SLACK:
            break
        await asyncio.sleep(0.1)
        after = engine.fd_count()
    print(f"\nfds: before={before} after={after} over {CONNECTIONS} connections")
    assert after <= before + FD_SLACK, (before, after)
    assert "Traceback" not in engine.log(), engine.log()[-3000:]
