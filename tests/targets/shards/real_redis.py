"""A real redis-server (Debian package redis-server) and a raw RESP client, for the tests of
the sharded Redis target; a module that imports this one is skipped (failed in CI) without
redis-server on PATH."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devamb.engine.core import Engine
from devamb.targets.shards import encoder
from devamb.targets.shards.parser import ReplyReader, reply_items
from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    reason = "redis-server is not on PATH (Debian: apt-get install redis-server; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"sharded Redis tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


class RedisServer:
    """A real redis-server on 127.0.0.1:PORT (no persistence), started and killed by tests."""

    def __init__(self, folder: Path, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.folder = folder / f"redis-{self.port}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        argv = [REDIS_SERVER or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder), *self.extra]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


class RespError(Exception):
    pass


def decode(raw: bytes) -> object:
    raw = bytes(raw)
    kind, body = raw[:1], raw[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        return RespError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(raw[1 : raw.index(b"\r\n")])
        return None if size < 0 else raw[raw.index(b"\r\n") + 2 :][:size]
    if raw.startswith(b"*-1"):
        return None
    return [decode(item) for item in reply_items(raw)]


class Client:
    """A raw RESP client: commands as bytes arguments, replies as Python values."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.replies = ReplyReader()
        self.ready: list[bytes] = []

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def replies_(self, count: int) -> list[object]:
        while len(self.ready) < count:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                raise ConnectionError(f"closed after {len(self.ready)} of {count} replies")
            self.ready.extend(self.replies.feed(data))
        out, self.ready = self.ready[:count], self.ready[count:]
        return [decode(r) for r in out]

    async def pipeline(self, *commands: tuple[object, ...]) -> list[object]:
        data = b"".join(encoder.command([_arg(a) for a in c]) for c in commands)
        await self.send_raw(data)
        return await self.replies_(len(commands))

    async def call(self, *args: object) -> object:
        return (await self.pipeline(args))[0]

    async def close(self) -> None:
        self.writer.close()


def _arg(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def profile(servers: list[RedisServer], extra: str = "", named: bool = False) -> str:
    if named:
        listed = "{" + ", ".join(f"s{i}: {s.url}" for i, s in enumerate(servers)) + "}"
    else:
        listed = "[" + ", ".join(s.url for s in servers) + "]"
    return f"""
    version: 1
    services:
      cache:
        listen: 0
        protocol: tcp
        timeout: 2s
        targets:
          sharded:
            shards: {listed}
            key: redis
            {extra}
    """


def port_of(engine: Engine) -> int:
    return engine.services["cache"].bound[1]  # type: ignore[index]


def details(engine: Engine) -> dict:  # type: ignore[type-arg]
    return engine.services["cache"].targets["sharded"].details()


async def flush(servers: list[RedisServer]) -> list[Client]:
    direct = [await Client.open(s.port) for s in servers]
    for client in direct:
        assert await client.call("FLUSHALL") == "OK"
    return direct


@contextlib.contextmanager
def redis_servers(folder: Path, count: int) -> Iterator[list[RedisServer]]:
    """`count` redis-servers with their files under `folder`, killed on the way out."""
    servers = [RedisServer(folder).start() for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.kill()
