"""The one seam every upstream connection goes through: `loop.create_connection`, or a
look-alike a target provides (an SSH bastion's channels, see devamb.tunnel)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

#: called as `loop.create_connection(protocol_factory, host, port, ssl=…, server_hostname=…)`
Dial = Callable[..., Awaitable[tuple[asyncio.Transport, Any]]]


def dial_with(dial: Dial | None) -> Dial:
    """`dial`, or the running loop's own `create_connection`."""
    return dial if dial is not None else asyncio.get_running_loop().create_connection


async def open_stream(
    dial: Dial | None, host: str, port: int, **options: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`asyncio.open_connection` through `dial` (for health checks)."""
    if dial is None:
        return await asyncio.open_connection(host, port, **options)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await dial(lambda: protocol, host, port, **options)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
