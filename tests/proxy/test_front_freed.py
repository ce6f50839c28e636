"""A closed client connection is freed by reference counting alone (issue 22): its protocol,
its task and, for one closed mid-exchange, what the exchange held (its record, views of the
upstream's read buffers) go as the task ends, not at a full collection of the cyclic
collector, which the engine makes rare (engine/collector.py). Real engine, real sockets."""

from __future__ import annotations

import asyncio
import gc

import pytest

from devamb.proxy.front import FrontProtocol
from tests.conftest import EngineFactory
from tests.upstreams import HttpUpstream

PROFILE = """
version: 1
services:
  web:
    listen: 0
    timeout: 10s
    targets:
      up: {url}
"""


def _protocols() -> list[object]:
    return [o for o in gc.get_objects() if type(o) is FrontProtocol]


@pytest.mark.parametrize("path,wait", [
    ("/slow/2", 2.5),  # gone before the response head: cancelled while it is awaited
    ("/bytes/4000000?delay=0.01&length=1", 0.3),  # gone while the body streams
    ("/answered", 0.3),  # answered, then closed while kept alive
])
async def test_a_closed_connection_needs_no_collection(
        make_engine: EngineFactory, no_collector: None, path: str, wait: float) -> None:
    up = await HttpUpstream().start()
    try:
        engine = await make_engine(PROFILE.format(url=up.url))
        port = engine.services["web"].bound[1]
        before = _protocols()
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            if path.startswith("/slow"):
                await asyncio.sleep(0.2)  # (the request on its way, its head awaited)
            else:
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(wait)  # (the slow upstream answers the cancelled requests' pool)
        left = [o for o in _protocols() if not any(o is b for b in before)]
        assert left == []
    finally:
        await up.stop()
