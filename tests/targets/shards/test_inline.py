"""Inline commands split as redis-server splits them (quotes and escapes, sdssplitargs): checked
against a real redis-server on random lines, and through the sharded target."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devamb.resp.inline import UnbalancedQuotes, split_inline
from devamb.targets.shards import encoder
from devamb.targets.shards.parser import ReplyReader
from tests.conftest import EngineFactory
from tests.targets.shards.real_redis import Client, RedisServer, decode, port_of, profile

ALPHABET = [b"a", b"b", b" ", b"  ", b"\t", b'"', b"'", b"\\", b"x", b"4", b"f", b"n", b"g",
            b"\\x41", b"\\'", b'\\"', b"\\\\", b"\x0b", b"\xff"]
UNBALANCED = b"-ERR Protocol error: unbalanced quotes in request\r\n"


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


async def _redis_split(port: int, line: bytes) -> list[bytes] | None:
    """The arguments redis-server reads from `RPUSH L <line>`; None for unbalanced quotes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(encoder.command([b"DEL", b"L"]) + b"RPUSH L " + line + b"\r\n"
                     + encoder.command([b"LRANGE", b"L", b"0", b"-1"]))
        replies, parse, data = [], ReplyReader(), b""
        while len(replies) < 3:
            data = await asyncio.wait_for(reader.read(65536), 5)
            replies += parse.feed(data)
            if replies[1:2] == [UNBALANCED] or not data:
                return None
        return decode(replies[2])  # type: ignore[return-value]
    finally:
        writer.close()


def _ours(line: bytes) -> list[bytes] | None:
    try:
        return split_inline(b"RPUSH L " + line)[2:]
    except UnbalancedQuotes:
        return None


async def test_random_lines_split_as_redis_server_splits_them(redis: RedisServer) -> None:
    rng = random.Random(15)
    lines = [b"".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))
             for _ in range(400)]
    lines += [b'"a b" c', b"'x y'z", b'"\\x4"', b'"\\xZZ"', b"a\"b c\" d", b'""', b"''"]
    checked = 0
    for line in lines:
        if not line.strip() or line.rstrip().endswith(b"\\"):
            continue  # RPUSH without values; a trailing backslash is redis-cli's business
        expected = await _redis_split(redis.port, line)
        if expected == []:  # an error reply (e.g. no value left after splitting)
            continue
        assert _ours(line) == expected, line
        checked += 1
    assert checked > 200


async def test_quoted_inline_command_through_the_sharded_target(
    make_engine: EngineFactory, redis: RedisServer
) -> None:
    engine = await make_engine(profile([redis]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
    writer.write(b'SET "my key" "hello world\\n"\r\nGET "my key"\r\nSET k "open\r\n')
    data = b""
    while not data.endswith(UNBALANCED):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, data
        data += chunk
    assert data == b"+OK\r\n$12\r\nhello world\n\r\n" + UNBALANCED
    writer.close()
    direct = await Client.open(redis.port)
    assert await direct.call("GET", "my key") == b"hello world\n"
    await direct.close()
