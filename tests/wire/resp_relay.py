"""A minimal relay driving a follower the way the TCP relay does (wire/follower.py's seam), for
the follower's tests with real clients and a real redis-server: bytes through, items obeyed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

from devamb.inspect.exchange import Exchange
from devamb.wire.follower import (
    FORWARD,
    Action,
    Close,
    Command,
    Decide,
    Delay,
    Exchanges,
    Follower,
    FollowerOptions,
    ToClient,
)
from devamb.wire.resp_follow import RedisFollower

_ids = itertools.count(1)


class Sink(Exchanges):
    """Exchanges as the recorder would keep them."""

    def __init__(self) -> None:
        self.conn = Exchange(next(_ids), "cache", "t", "redis", "127.0.0.1")
        self.records: list[Exchange] = []

    def begin(self) -> Exchange:
        return Exchange(next(_ids), "cache", "t", "redis", "127.0.0.1")

    def finish(self, exchange: Exchange) -> None:
        self.records.append(exchange)

    def connection(self) -> Exchange:
        return self.conn


Decider = Callable[[Command], Action]


class FollowRelay:
    """127.0.0.1:PORT relayed to a redis-server; each connection followed by a RedisFollower."""

    def __init__(self, upstream: int, decide: Decider | None = None) -> None:
        self.upstream = upstream
        self.decide = decide
        self.followers: list[tuple[Follower, Sink]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> FollowRelay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def records(self, index: int = -1) -> list[Exchange]:
        return self.followers[index][1].records

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        sink = Sink()
        follower = RedisFollower(sink, FollowerOptions())
        follower.gating = self.decide is not None
        self.followers.append((follower, sink))
        done = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                items = follower.client_data(data)
                if items is None:
                    up_writer.write(data)
                    continue
                while items:
                    more = None
                    for item in items:
                        if isinstance(item, ToClient):
                            writer.write(item.data)
                        elif isinstance(item, Decide):
                            assert self.decide is not None
                            action = self.decide(item.command)
                            follower.resolve(action)
                            if isinstance(action, Delay):
                                await asyncio.sleep(action.seconds)
                            if isinstance(action, Close):
                                writer.transport.abort()
                                up_writer.close()
                                return
                            more = follower.client_data(b"")
                        else:
                            up_writer.write(item)
                    items = more or []
            up_writer.write_eof()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                pieces = follower.server_data(data)
                for piece in [data] if pieces is None else pieces:
                    writer.write(piece)
            with contextlib.suppress(OSError):
                writer.write_eof()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        finally:
            follower.ended(None)
            done.set()
            writer.close()
            up_writer.close()


__all__ = ["FORWARD", "FollowRelay", "Sink"]
