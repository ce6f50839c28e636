"""A reference point, not a product: the smallest HTTP/1.1 reverse proxy on asyncio Protocols.

    python bench/refproxy.py PORT UPSTREAM_PORT      (DEVAMB_LOOP=uvloop|asyncio)

It shows what Python can do on this machine when neither side goes through aiohttp: requests and
responses are parsed by httptools (llhttp), hop-by-hop headers are dropped, X-Forwarded-For and Via
are added, the response head leaves with the first body bytes in one write, upstream connections
are kept alive in a pool, and every exchange is recorded as a summary in a bounded ring.
Limits: bodies framed by Content-Length only (no chunked re-framing), no pipelining, no
backpressure, no timeouts, no WebSocket. `run.py --reference` measures it beside devamb.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque

import httptools

HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"host"}
    | {b"proxy-authorization", b"proxy-authenticate"}
)
RECORDS: deque[tuple[bytes, bytes, int, float, int]] = deque(maxlen=5000)


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream, serving one client exchange at a time."""

    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.client: Client | None = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.out = bytearray()
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP:
            self.out += b"%s: %s\r\n" % (name, value)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.out[:0] = b"HTTP/1.1 %d -\r\n" % status
        self.out += b"\r\n"
        if self.client is not None:
            self.client.status = status

    def on_body(self, body: bytes) -> None:
        self.out += body
        if self.client is not None:
            self.client.bytes_out += len(body)

    def on_message_complete(self) -> None:
        self.done = True

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        client = self.client
        if client is None or client.transport is None:
            return
        if self.out:
            client.transport.write(bytes(self.out))
            self.out.clear()
        if self.done:
            self.done = False
            self.client = None
            self.pool.append(self)
            client.finished()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()


class Client(asyncio.Protocol):
    """One client connection; its requests go to a pooled upstream connection."""

    def __init__(self, upstream: tuple[str, int], pool: list[Upstream]) -> None:
        self.upstream_address = upstream
        self.host = b"%s:%d" % (upstream[0].encode(), upstream[1])
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.up: Upstream | None = None
        self.pending = bytearray()
        self.head = bytearray()
        self.url = b""
        self.method = b""
        self.remote = b""
        self.status = 0
        self.bytes_out = 0
        self.started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = peer[0].encode() if peer else b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.status, self.bytes_out = b"", 0, 0
        self.head.clear()
        self.started = time.perf_counter()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP:
            self.head += b"%s: %s\r\n" % (name, value)

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()
        self.send(
            b"%s %s HTTP/1.1\r\nHost: %s\r\n%sX-Forwarded-For: %s\r\nVia: 1.1 refproxy\r\n\r\n"
            % (self.method, self.url, self.host, bytes(self.head), self.remote)
        )

    def on_body(self, body: bytes) -> None:
        self.send(body)

    def send(self, data: bytes) -> None:
        if self.up is None and self.pool:
            self.up = self.pool.pop()
            self.up.client = self
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(data)
            return
        first = not self.pending
        self.pending += data
        if first:
            asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(
                lambda: Upstream(self.pool), *self.upstream_address
            )
        except OSError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.up, up.client = up, self
        up.transport.write(bytes(self.pending))  # type: ignore[union-attr]
        self.pending.clear()

    def finished(self) -> None:
        self.up = None
        duration = (time.perf_counter() - self.started) * 1000
        RECORDS.append((self.method, self.url, self.status, duration, self.bytes_out))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()  # mid-exchange: that upstream connection is not reusable


async def serve(port: int, upstream_port: int) -> None:
    pool: list[Upstream] = []
    upstream = ("127.0.0.1", upstream_port)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream, pool), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    if os.environ.get("DEVAMB_LOOP", "uvloop") == "uvloop":
        import uvloop

        uvloop.run(serve(port, upstream_port))
    else:
        asyncio.run(serve(port, upstream_port))


if __name__ == "__main__":
    main()
