"""A finished TCP relay is freed by reference counting alone (issue 22): its record's
previews then go when the store drops the record, as the record budget assumes, not at a
full collection of the cyclic collector, which the engine makes rare (engine/collector.py).
Real relay, real sockets; plain, shaped by a fault, and followed (redis)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from devamb.service import tcp
from tests.conftest import EngineFactory
from tests.upstreams import TcpUpstream

PROFILE = """
version: 1
services:
  raw:
    listen: 0
    protocol: {protocol}
    timeout: 2s
    targets:
      up: tcp://127.0.0.1:{port}
    faults:
      lag: {{kind: latency, delay: 1ms, direction: both, enabled: {shaped}}}
"""


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def _alive(service: object) -> list[object]:
    """The service's relays and their sides still in memory (freed or not yet collected)."""
    relays = [o for o in gc.get_objects() if type(o) is tcp._Relay]
    ours = [r for r in relays if r.listener.service is service]
    return ours + [o for o in gc.get_objects()
                   if type(o) is tcp._Side and any(o.relay is r for r in ours)]


@pytest.mark.parametrize("protocol,shaped", [
    ("tcp", "false"), ("tcp", "true"), ("redis", "false"), ("redis", "true")])
async def test_a_finished_relay_needs_no_collection(
        make_engine: EngineFactory, no_collector: None, protocol: str, shaped: str) -> None:
    up = await TcpUpstream(_echo).start()
    try:
        engine = await make_engine(
            PROFILE.format(protocol=protocol, port=up.port, shaped=shaped))
        service = engine.services["raw"]
        assert not _alive(service)
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", service.bound[1])
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            assert await reader.readexactly(14) == b"*1\r\n$4\r\nPING\r\n"
            writer.close()
            await writer.wait_closed()
        records = 3 if protocol == "tcp" else 6  # (redis: the connections' and the commands')
        for _ in range(200):
            if len(engine.store) == records and not service.connections:
                break
            await asyncio.sleep(0.01)
        assert len(engine.store) == records and not service.connections
        for _ in range(20):  # (the loop's last callbacks of the closed transports)
            await asyncio.sleep(0)
        assert _alive(service) == []
    finally:
        await up.stop()
