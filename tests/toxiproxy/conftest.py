"""A real devamb engine (`devamb up --headless --toxiproxy-api 127.0.0.1:0`, its own process)
for real Toxiproxy clients to drive, and a real TCP echo upstream behind its proxies."""

from __future__ import annotations

import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROFILE = """\
version: 1
services:
  profile-cache:
    listen: 0
    protocol: tcp
    targets:
      local: tcp://127.0.0.1:9
"""
READY = re.compile(r"Toxiproxy API on http://(\S+)")


@dataclass
class Api:
    host: str
    port: int
    process: subprocess.Popen[str]
    log: list[str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_engine(folder: Path, *args: str) -> Api:
    """`devamb up --headless ARGS` in `folder`, once its log says where the API listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devamb", "up", "--headless", *args],
        cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "DEVAMB_CHILD": "1"},
    )
    assert process.stderr is not None
    lines: list[str] = []
    address = None
    for line in process.stderr:  # ends (EOF) if the engine dies
        lines.append(line)
        found = READY.search(line)
        if found:
            address = found.group(1)
            break
    if address is None:
        process.wait(60)
        raise AssertionError("".join(lines))
    drain = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    drain.start()
    host, port = address.rsplit(":", 1)
    return Api(host, int(port), process, lines)


def stop_engine(api: Api) -> None:
    api.process.terminate()
    api.process.wait(60)


@pytest.fixture(scope="module")
def toxiproxy_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An engine serving the Toxiproxy API on a free loopback port, for the whole module."""
    folder: Path = tmp_path_factory.mktemp("toxiproxy")
    (folder / "devamb.yaml").write_text(PROFILE)
    api = start_engine(folder, "--toxiproxy-api", "127.0.0.1:0")
    yield api
    stop_engine(api)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """A TCP echo server on a free loopback port, in a thread."""
    server = EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def connect(listen: str) -> socket.socket:
    host, port = listen.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def round_trip(listen: str, data: bytes = b"ping") -> tuple[bytes, float]:
    """Send `data` through a new connection; what came back and the seconds it took."""
    with connect(listen) as conn:
        start = time.monotonic()
        conn.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - start


def reset_by_peer(listen: str) -> bool:
    """Whether a new connection is reset once it sends (a reset_peer toxic)."""
    with connect(listen) as conn:
        try:
            conn.sendall(b"ping")
            conn.shutdown(socket.SHUT_WR)  # the echo ends the connection once it answered
            while conn.recv(65536):
                pass
        except ConnectionResetError:
            return True
        return False
