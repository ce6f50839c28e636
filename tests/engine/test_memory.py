"""The engine gives the heap's free pages back after bursts of recorded traffic (issue 22)."""

from __future__ import annotations

import asyncio
import platform
import re
from pathlib import Path

import aiohttp
import pytest

from devamb.engine import memory
from devamb.engine.memory import TRIM_AFTER, TRIM_EVERY, Reclaimer
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_after_a_burst_and_at_most_every_interval() -> None:
    clock = Clock()
    reclaimer = Reclaimer(clock)
    assert not reclaimer.tick(TRIM_AFTER - 1)  # not enough taken in yet
    assert reclaimer.tick(TRIM_AFTER) is GLIBC
    clock.now += TRIM_EVERY / 2
    assert not reclaimer.tick(3 * TRIM_AFTER)  # too soon after the last trim
    clock.now += TRIM_EVERY
    assert reclaimer.tick(3 * TRIM_AFTER) is GLIBC
    clock.now += 10 * TRIM_EVERY
    assert not reclaimer.tick(3 * TRIM_AFTER + 1)  # idle: nothing new since
    assert reclaimer.trims == (2 if GLIBC else 0)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_malloc_trim_gives_free_heap_pages_back() -> None:
    trim = memory._malloc_trim()
    assert trim is not None
    # ~25 MiB written in the heap (below mmap's size), then a block that keeps the heap's top
    # in place: what is freed under it goes back to the system only when trimmed
    held = [b"\x01" * (64 * 1024) for _ in range(400)]
    tail = b"\x02" * (64 * 1024)
    del held[:-1]
    before = _rss_kib()
    trim()
    assert _rss_kib() < before - 8 * 1024  # most of the ~25 MiB freed in the middle went back
    del held, tail


def _rss_kib() -> int:
    found = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1))


async def test_the_engine_tick_trims_after_recorded_traffic(
    make_engine: EngineFactory, upstream: HttpUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "TRIM_AFTER", 256 * 1024)
    engine = await make_engine(f"""
    services:
      api:
        listen: 0
        targets: {{up: {upstream.url}}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        for _ in range(8):  # 64 KiB previews: ~0.5 MiB taken in
            await (await client.get(f"{url}/bytes/{128 * 1024}")).read()
    assert engine.store.added >= 256 * 1024
    reclaimer = engine.lifecycle.reclaimer
    for _ in range(100):  # the tick runs every 0.5 s
        if reclaimer.trims or not GLIBC:
            break
        await asyncio.sleep(0.1)
    assert reclaimer.trims == (1 if GLIBC else 0)
