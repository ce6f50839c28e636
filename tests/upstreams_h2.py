"""A small HTTP/2 (h2c, prior knowledge) upstream built on `h2`, for the http2 service tests.

Routes, by path:
- `/echo`: answers 200 with the request body (the checksum of it in `x-sha256`), and the trailer
  `x-end: done`;
- `/size/N`: answers N bytes of a seeded pattern;
- `/lazy/N`: the same N bytes, made as the windows let them go (N may exceed memory: for
  flow-control tests, where `sent` says how much went out);
- `/early`: answers 200 `early` as soon as the request headers arrive (the request goes on);
- `/slow`: answers `slow` once `gate` is set;
- `/reset`: resets the stream with ENHANCE_YOUR_CALM (11) once the request ended;
- anything else: 200 with `<name> <method> <path>`.
Every response names the server in `x-upstream`. `start(tls=...)` serves h2 over TLS (the
context says which ALPN protocols it selects: `server_tls`)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path
from typing import cast

import h2.config
import h2.connection
import h2.events


def pattern(size: int) -> bytes:
    block = bytes(range(256)) * 64
    return (block * (size // len(block) + 1))[:size]


_BLOCK = pattern(65536 + 256)


class _Conn(asyncio.Protocol):
    def __init__(self, server: H2Upstream) -> None:
        self.server = server
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.transport: asyncio.Transport | None = None
        self.bodies: dict[int, bytearray] = {}
        self.heads: dict[int, dict[str, str]] = {}
        self.pending: dict[int, tuple[bytes, list[tuple[str, str]] | None]] = {}
        self.lazy: dict[int, list[int]] = {}  # /lazy streams: [bytes sent, bytes to send]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        self.server.connections += 1
        self.server.open.add(self)
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.heads[event.stream_id] = {
                    k.decode() if isinstance(k, bytes) else k: v.decode()
                    if isinstance(v, bytes) else v for k, v in event.headers
                }
                self.bodies[event.stream_id] = bytearray()
                if self.heads[event.stream_id].get(":path") == "/early":
                    self.conn.send_headers(event.stream_id, [(":status", "200")])
                    self.conn.send_data(event.stream_id, b"early", end_stream=True)
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self.bodies:
                    self.bodies[event.stream_id] += event.data
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif isinstance(event, h2.events.StreamReset):
                self.server.resets.append(int(event.error_code or 0))
                self.heads.pop(event.stream_id or 0, None)
                self.bodies.pop(event.stream_id or 0, None)
                self.pending.pop(event.stream_id or 0, None)
                self.lazy.pop(event.stream_id or 0, None)
            elif isinstance(event, h2.events.StreamEnded):
                if self.heads.get(event.stream_id, {}).get(":path") != "/early":
                    self._answer(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                for stream_id in list(self.pending):
                    self._send(stream_id)
                for stream_id in list(self.lazy):
                    self._send_lazy(stream_id)
        self._flush()

    def _answer(self, stream_id: int) -> None:
        head = self.heads.pop(stream_id)
        body = bytes(self.bodies.pop(stream_id))
        path = head.get(":path", "")
        self.server.paths.append(path)
        trailers = None
        if path == "/slow":
            task = asyncio.get_running_loop().create_task(self._slow(stream_id))
            self.server.tasks.add(task)  # held: a task nobody holds may be collected
            task.add_done_callback(self.server.tasks.discard)
            return
        if path == "/reset":
            self.conn.reset_stream(stream_id, 11)
            return
        if path.startswith("/lazy/"):
            self.conn.send_headers(stream_id, [(":status", "200"), ("content-length", path[6:])])
            self.lazy[stream_id] = [0, int(path[6:])]
            self._send_lazy(stream_id)
            return
        if path == "/echo":
            out = body
            extra = [("x-sha256", hashlib.sha256(body).hexdigest())]
            trailers = [("x-end", "done")]
        elif path.startswith("/size/"):
            out, extra = pattern(int(path[6:])), []
        else:
            out, extra = f"{self.server.name} {head.get(':method')} {path}".encode(), []
        headers = [(":status", "200"), ("x-upstream", self.server.name), *extra]
        if trailers is None:
            headers.append(("content-length", str(len(out))))
        self.conn.send_headers(stream_id, headers, end_stream=not out and trailers is None)
        if out or trailers is not None:
            self.pending[stream_id] = (out, trailers)
            self._send(stream_id)

    async def _slow(self, stream_id: int) -> None:
        await self.server.gate.wait()
        self.conn.send_headers(stream_id, [(":status", "200"), ("content-length", "4")])
        self.conn.send_data(stream_id, b"slow", end_stream=True)
        self._flush()

    def _send(self, stream_id: int) -> None:
        out, trailers = self.pending[stream_id]
        while out:
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pending[stream_id] = (out, trailers)
                return
            chunk, out = out[:window], out[window:]
            self.conn.send_data(stream_id, chunk, end_stream=not out and trailers is None)
        del self.pending[stream_id]
        if trailers is not None:
            self.conn.send_headers(stream_id, trailers, end_stream=True)

    def _send_lazy(self, stream_id: int) -> None:
        progress = self.lazy[stream_id]
        while progress[0] < progress[1]:
            size = min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size, progress[1] - progress[0])
            if size <= 0:
                return
            start = progress[0] % 256
            progress[0] += size
            self.server.sent += size
            self.conn.send_data(stream_id, _BLOCK[start:start + size],
                                end_stream=progress[0] == progress[1])
        del self.lazy[stream_id]

    def _flush(self) -> None:
        if self.transport is not None:
            self.transport.write(self.conn.data_to_send())


class H2Upstream:
    def __init__(self, name: str = "h2up") -> None:
        self.name = name
        self.port = 0
        self.paths: list[str] = []
        self.resets: list[int] = []  # the error codes of streams the client reset
        self.gate = asyncio.Event()  # opens /slow
        self.connections = 0
        self.open: set[_Conn] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0  # bytes of /lazy bodies sent
        self._server: asyncio.Server | None = None

    async def start(
        self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> H2Upstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), host, port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.open):
                if conn.transport is not None:
                    conn.transport.close()
            await self._server.wait_closed()


def server_tls(cert: Path, key: Path, alpn: tuple[str, ...] = ("h2",)) -> ssl.SSLContext:
    """A server TLS context for `cert` and `key`, selecting among `alpn` (none: no ALPN)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
