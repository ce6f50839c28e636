"""Both ends of unary gRPC calls over real sockets, for `h2hotpath.py --mode grpc-net`.

    python bench/h2peer.py DEVAMB_PORT UPSTREAM_LISTEN_FD CALLS

One process plays the grpcio client (connected to devamb's listener) and the grpcio upstream
(on the socket devamb's target points at), with the frames grpcio sends for a steady-state
call, ready-made (h2hotpath's: HPACK blocks indexed after the first, the client's BDP PING
every 16 calls), in the order grpcio 1.85 sends them on this machine (read off the engine's
sockets, 2026-12-07): the client's HEADERS and DATA in one write, the server's HEADERS, DATA,
trailers and a WINDOW_UPDATE for the connection in one write. Each call is sent as grpcio
sends it (one write per side) and the next one starts when the answer's trailers are in, so
devamb is woken from idle twice per call, as under a real c1 client. The peer spends a few
µs per leg (no h2, no grpcio), so devamb's CPU is most of what the round trip holds; it
prints the round trips' p50 and p90 in µs and, as the baseline, those of the same bytes
passed straight from the peer's client socket to its upstream socket over one loopback
connection each way with no proxy (`direct`).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time

from h2hotpath import (
    ACK,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    MESSAGE,
    PREFACE,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
    frames,
    grpc_blocks,
)

PING = 6
PING_EVERY = 16  # calls between the client's BDP PINGs (grpcio sends one now and then)


class Wire:
    """A socket read as HTTP/2 frames: (kind, flags, stream) of each frame received."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> list[tuple[int, int, int]]:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data
        if self.buffer.startswith(PREFACE):
            self.buffer = self.buffer[len(PREFACE):]
        out, at = [], 0
        while at + 9 <= len(self.buffer):
            length = int.from_bytes(self.buffer[at:at + 3], "big")
            if at + 9 + length > len(self.buffer):
                break
            out.append(next(frames(self.buffer[at:at + 9 + length])))
            at += 9 + length
        self.buffer = self.buffer[at:]
        return out


def main() -> None:
    port, listen_fd, calls = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    request, answer, trailers = grpc_blocks()
    listener = socket.socket(fileno=listen_fd)
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") + frame(
        WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**30)))
    credit = struct.pack(">I", len(MESSAGE))
    up: Wire | None = None
    down = Wire(client)
    answered = 0

    def serve_upstream() -> None:
        """Answer what devamb sent the upstream: SETTINGS, and each request's message."""
        nonlocal answered
        assert up is not None
        out = []
        for kind, flags, stream in up.read():
            if kind == SETTINGS and not flags & ACK:
                out.append(frame(SETTINGS, ACK, 0, b""))
            elif kind == DATA:  # (a reflection stream the engine opens is answered too)
                block = 0 if answered == 0 else 1
                answered += 1
                out += [frame(HEADERS, END_HEADERS, stream, answer[block]),
                        frame(DATA, 0, stream, MESSAGE),
                        frame(HEADERS, END_HEADERS | END_STREAM, stream, trailers[block]),
                        frame(WINDOW_UPDATE, 0, 0, credit)]
        if out:
            up.sock.sendall(b"".join(out))

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(client, selectors.EVENT_READ, "client")
    rounds: list[float] = []
    for call in range(calls):
        stream = 1 + 2 * call
        out = []
        if call and call % PING_EVERY == 0:
            out.append(frame(PING, 0, 0, struct.pack(">Q", call)))
        out.append(frame(HEADERS, END_HEADERS, stream, request[0 if call == 0 else 1]))
        out.append(frame(DATA, END_STREAM, stream, MESSAGE))
        started = time.perf_counter()
        client.sendall(b"".join(out))
        done = False
        while not done:
            for key, _ in selector.select():
                if key.data == "accept":
                    sock, _ = listener.accept()
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.sendall(frame(SETTINGS, 0, 0, b"") + frame(
                        WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**30)))
                    up = Wire(sock)
                    selector.register(sock, selectors.EVENT_READ, "upstream")
                elif key.data == "upstream":
                    serve_upstream()
                else:
                    for kind, flags, got in down.read():
                        if kind == SETTINGS and not flags & ACK:
                            client.sendall(frame(SETTINGS, ACK, 0, b""))
                        elif got == stream and flags & END_STREAM and kind in (DATA, HEADERS):
                            done = True
        rounds.append(time.perf_counter() - started)
    direct = direct_rounds(min(calls, 2000), request[1], answer[1], trailers[1], credit)
    print(" ".join(f"{name}={q}" for name, q in (
        ("p50", quantile(rounds, 0.5)), ("p90", quantile(rounds, 0.9)),
        ("direct_p50", quantile(direct, 0.5)), ("direct_p90", quantile(direct, 0.9)))))
    client.close()


def direct_rounds(calls: int, request: bytes, answer: bytes, trailers: bytes,
                  credit: bytes) -> list[float]:
    """The same frames with no proxy: client socket -> upstream socket -> client socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    a = socket.create_connection(listener.getsockname())
    b, _ = listener.accept()
    for sock in (a, b):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ask = b"".join([frame(HEADERS, END_HEADERS, 1, request), frame(DATA, END_STREAM, 1, MESSAGE)])
    tell = b"".join([frame(HEADERS, END_HEADERS, 1, answer), frame(DATA, 0, 1, MESSAGE),
                     frame(HEADERS, END_HEADERS | END_STREAM, 1, trailers),
                     frame(WINDOW_UPDATE, 0, 0, credit)])
    rounds = []
    for _ in range(calls):
        started = time.perf_counter()
        a.sendall(ask)
        got = 0
        while got < len(ask):
            got += len(b.recv(65536))
        b.sendall(tell)
        got = 0
        while got < len(tell):
            got += len(a.recv(65536))
        rounds.append(time.perf_counter() - started)
    for sock in (a, b, listener):
        sock.close()
    return rounds


def quantile(values: list[float], q: float) -> int:
    ordered = sorted(values[len(values) // 10:])  # (the first tenth warms up)
    return round(ordered[int(len(ordered) * q)] * 1e6)


if __name__ == "__main__":
    os.sched_setaffinity(0, {int(os.environ.get("PEER_CPU", "0"))} & os.sched_getaffinity(0)
                         or os.sched_getaffinity(0))
    main()
