"""The upstreams of bench/http2.py, each run as its own process:

    python bench/h2_upstreams.py h2 PORT      # h2c (prior knowledge): 1 KiB on every path
    python bench/h2_upstreams.py grpc PORT    # grpcio: /bench.Ping/Ping answers its request

The h2 one is built on the `h2` library under uvloop (no C HTTP/2 server is installed here:
nghttpd is not; see the report's note), answering from a ready response with one write per read.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent import futures
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

BODY = bytes(range(256)) * 4  # 1 KiB
HEADERS = [(b":status", b"200"), (b"content-type", b"application/octet-stream"),
           (b"content-length", str(len(BODY)).encode())]


class _H2(asyncio.Protocol):
    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(2**24)
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                try:
                    conn.send_headers(event.stream_id, HEADERS)
                    conn.send_data(event.stream_id, BODY, end_stream=True)
                except h2.exceptions.StreamClosedError:  # reset in the same read (a proxy
                    pass  # cancelling what h2load left in flight): not the connection's end
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        out = conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)


async def serve_h2(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_H2, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


def serve_grpc(port: int) -> None:
    import grpc

    def ping(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Ping", {"Ping": grpc.unary_unary_rpc_method_handler(ping)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "h2":
        try:
            import uvloop

            uvloop.run(serve_h2(port))
        except ImportError:
            asyncio.run(serve_h2(port))
    else:
        serve_grpc(port)
