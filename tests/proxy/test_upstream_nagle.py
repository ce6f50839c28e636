"""An upstream that writes its head and body in two sends without TCP_NODELAY does not stall
every exchange by the delayed-ACK timer (proxy/quickack.py).

Python's `http.server` with HTTP/1.1 is such an upstream: on a keep-alive connection its body
waits, by Nagle's algorithm, for the ACK of the head, which Linux delays by at least 40 ms
(TCP_DELACK_MIN) once it deems the connection interactive. The test times nothing against a
machine-dependent budget: it takes the median of many sequential exchanges, which is ~40 ms or
more when the stall is there and well under a millisecond when it is not, and sets the bound at
half the kernel's minimum delay.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import EngineFactory

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's (see proxy/quickack.py)"
)

BODY = b"n" * 100
DELACK_MIN = 0.040  # Linux's shortest delayed ACK


class TwoSends(http.server.BaseHTTPRequestHandler):
    """Head and body in two writes (wfile is unbuffered), Nagle left on."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()  # one send: the head
        self.wfile.write(BODY)  # another: held until the head is acknowledged

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def two_sends() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TwoSends)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def exchange_times(port: int, count: int) -> list[float]:
    """Seconds per exchange, `count` in a row on one keep-alive connection."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: up\r\n\r\n")
            answer = b""
            while not answer.endswith(BODY):
                data = sock.recv(65536)
                assert data, answer
                answer += data
            times.append(time.perf_counter() - started)
    return times


async def test_no_delayed_ack_stall_per_exchange(
    make_engine: EngineFactory, two_sends: int
) -> None:
    engine = await make_engine(f"""
        services:
          api:
            listen: 0
            targets:
              up: http://127.0.0.1:{two_sends}
    """)
    _, port = engine.services["api"].bound  # type: ignore[misc]
    times = await asyncio.to_thread(exchange_times, port, 41)
    median = statistics.median(times[1:])  # the first one also opens the upstream connection
    assert median < DELACK_MIN / 2, (
        f"median exchange {median * 1000:.1f} ms: the upstream's body waited for a delayed ACK "
        f"({sys.platform})"
    )
