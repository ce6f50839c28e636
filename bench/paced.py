"""An open-loop HTTP/1.1 load generator at a fixed rate (wrk2 is not packaged here).

    python bench/paced.py URL --rate 2000 --seconds 5 [--connections 64]

Request i is due at start + i / rate whatever the answers do; it goes out on an idle keep-alive
connection (a new one is opened while fewer than --connections exist, else it waits for the next
idle one). Latency is from the write of the request to the last byte of the response (and, as
wrk2 reports it, from when the request was due). Prints one JSON object: requests, errors,
achieved rate, p50/p99 of both. Runs on uvloop when it is installed; the caller pins it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from urllib.parse import urlsplit

TICK = 0.0005  # seconds between checks for due requests (uvloop rounds timers to 1 ms)


class Connection(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent = 0.0
        self.due = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.busy, self.due, self.sent = True, due, time.perf_counter()
        self.transport.write(self.client.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        done = time.perf_counter()
        ok = self.buffer[9:10] == b"2"
        del self.buffer[: end + 4 + length]
        self.busy = False
        self.client.completed(self, done, ok)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)


class Client:
    def __init__(self, url: str, rate: float, seconds: float, connections: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path or "/"
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: bench-paced\r\n\r\n"
        ).encode()
        self.rate, self.seconds, self.limit = rate, seconds, connections
        self.idle: deque[Connection] = deque()
        self.all: list[Connection] = []
        self.opening = 0
        self.waiting: deque[float] = deque()  # due times of requests with no connection yet
        self.latency: list[float] = []
        self.from_due: list[float] = []
        self.errors = 0

    def completed(self, conn: Connection, done: float, ok: bool) -> None:
        self.latency.append(done - conn.sent)
        self.from_due.append(done - conn.due)
        if not ok:
            self.errors += 1
        self.dispatch(conn)

    def lost(self, conn: Connection) -> None:
        if conn.busy:
            self.errors += 1
        if conn in self.all:
            self.all.remove(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def dispatch(self, conn: Connection) -> None:
        if self.waiting:
            conn.send(self.waiting.popleft())
        else:
            self.idle.append(conn)

    async def open(self) -> None:
        self.opening += 1
        try:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(lambda: Connection(self), self.host, self.port)
            self.all.append(conn)
            self.dispatch(conn)
        except OSError:
            self.errors += 1
        finally:
            self.opening -= 1

    async def run(self) -> dict[str, object]:
        start = time.perf_counter()
        issued = 0
        tasks: set[asyncio.Task[None]] = set()
        while (now := time.perf_counter()) - start < self.seconds:
            due_count = int((now - start) * self.rate) - issued
            for _ in range(due_count):
                due = start + issued / self.rate
                issued += 1
                if self.idle:
                    self.idle.popleft().send(due)
                    continue
                self.waiting.append(due)
                if len(self.all) + self.opening < self.limit:
                    task = asyncio.create_task(self.open())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.sleep(TICK)
        elapsed = time.perf_counter() - start
        deadline = time.perf_counter() + 5
        while any(c.busy for c in self.all) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()
        return self.report(issued, elapsed)

    def report(self, issued: int, elapsed: float) -> dict[str, object]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

        return {
            "requests": len(self.latency),
            "issued": issued,
            "unanswered": issued - len(self.latency),
            "errors": self.errors,
            "rate": round(len(self.latency) / elapsed, 1),
            "target_rate": self.rate,
            "p50_ms": pct(self.latency, 0.50),
            "p99_ms": pct(self.latency, 0.99),
            "p50_from_due_ms": pct(self.from_due, 0.50),
            "p99_from_due_ms": pct(self.from_due, 0.99),
            "connections": len(self.all),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    client = Client(args.url, args.rate, args.seconds, args.connections)
    print(json.dumps(runner(client.run())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
