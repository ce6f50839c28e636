"""Issue 15, bug 1: a server that speaks first (SMTP/FTP banners, MySQL's greeting, gRPC's
SETTINGS) must have its first bytes relayed on every connection, faults or not.

The upstream writes its banner the moment it accepts, so the bytes can reach the engine before
`create_connection` has returned to the relay; they used to be parked and never flushed (and the
upstream side left paused), so the client waited for a banner that never came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hardening.engine_process import EngineProcess

BANNER = b"220 ready ok\n"  # 13 bytes, as in the report
WAIT = 10.0  # per connection: generous; a lost banner never arrives at all

PROFILE = """
version: 1
services:
  plain:
    listen: 0
    protocol: tcp
    timeout: 5s
    targets:
      up: tcp://127.0.0.1:{port}
  faulted:
    listen: 0
    protocol: tcp
    timeout: 5s
    targets:
      up: tcp://127.0.0.1:{port}
    faults:
      slow: {{kind: latency, delay: 1ms, jitter: 1ms, direction: both}}
      narrow: {{kind: bandwidth, rate: 1MiB, direction: both}}
"""


async def _speak_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Banner on accept, then echo lines until the client closes."""
    try:
        writer.write(BANNER)
        while line := await reader.readline():
            writer.write(line)
        writer.close()
    except ConnectionError:
        pass


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineProcess]:
    server = await asyncio.start_server(_speak_first, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    proc = EngineProcess(tmp_path, PROFILE.format(port=port))
    try:
        yield await proc.start()
    finally:
        await proc.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


async def _one(port: int, n: int) -> str | None:
    """A connection that waits for the banner, then checks the line after it; None if all came."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        banner = await asyncio.wait_for(reader.readexactly(len(BANNER)), WAIT)
        if banner != BANNER:
            return f"#{n}: banner {banner!r}"
        line = f"hello {n}\n".encode()
        writer.write(line)
        echo = await asyncio.wait_for(reader.readexactly(len(line)), WAIT)
        return None if echo == line else f"#{n}: echo {echo!r}"
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        return f"#{n}: {type(exc).__name__} {exc}"
    finally:
        if writer is not None:
            writer.close()


async def _sequential(port: int, count: int) -> list[str]:
    for n in range(count):
        if (problem := await _one(port, n)) is not None:
            return [problem]  # fail fast: each lost banner costs WAIT seconds
    return []


async def _parallel(port: int, count: int, width: int = 50) -> list[str]:
    problems: list[str] = []
    for start in range(0, count, width):
        batch = await asyncio.gather(*(_one(port, n) for n in range(start, start + width)))
        problems += [p for p in batch if p is not None]
        if problems:
            break
    return problems


@pytest.mark.timeout(120)
async def test_every_connection_gets_the_banner(engine: EngineProcess) -> None:
    _, plain = await engine.address("plain")
    _, faulted = await engine.address("faulted")
    assert await _sequential(plain, 600) == []
    assert await _parallel(plain, 700) == []
    assert await _sequential(faulted, 300) == []
    assert await _parallel(faulted, 400) == []
    faults = (await engine.control.faults("faulted"))["faulted"]
    assert faults and all(f["fired"] >= 700 for f in faults), faults  # every connection shaped
    status = await engine.control.status()
    assert all(s["listening"] for s in status["services"])
    assert "Traceback" not in engine.log()
