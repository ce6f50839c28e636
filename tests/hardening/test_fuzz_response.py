"""Fuzzing the upstream side with hypothesis: whatever bytes an upstream answers with (random,
or a valid response mutated), the client gets an HTTP answer (the upstream's own, a 502, or a
cut after a relayed head), the engine never logs a traceback and keeps serving. Example counts
are bounded so the file runs in well under a minute."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hardening.fuzzing import fuzz, mutations
from tests.hardening.raw_upstream import RawUpstream, read_head
from tests.hardening.test_fuzz import EngineThread
from tests.upstreams import HttpUpstream


class FuzzUpstream(RawUpstream):
    """Answers each request with `answer`, written in the pieces `cuts` gives, then closes."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = b""
        self.cuts: list[int] = []
        self.handler = self._answer

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        answer, start = self.answer, 0
        for cut in [*sorted(self.cuts), len(answer)]:
            if cut > start:
                writer.write(answer[start:cut])
                await writer.drain()
                await asyncio.sleep(0)
                start = cut


class ResponseFuzzEngine(EngineThread):
    """The fuzz engine of test_fuzz.py with its default target, `raw`, answered by a
    FuzzUpstream; `up` (a well-behaved upstream) shows the engine still serving."""

    def start(self) -> ResponseFuzzEngine:
        logging.getLogger("devamb.proxy").addHandler(self.logged)
        self.thread.start()
        self.raw = self.run(FuzzUpstream().start())
        self.upstream = self.run(HttpUpstream("up").start())
        path = self.folder / "devamb.yaml"
        path.write_text(
            "services:\n  api:\n    listen: 0\n    timeout: 1s\n    target: raw\n"
            f"    targets: {{raw: \"http://127.0.0.1:{self.raw.port}\", "
            f"up: \"{self.upstream.url}\"}}\n"
        )
        self.engine = self.run(self._start_engine(path))
        self.address = self.engine.services["api"].bound
        return self

    def stop(self) -> None:
        self.run(self.raw.stop())
        super().stop()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResponseFuzzEngine]:
    started = ResponseFuzzEngine(tmp_path_factory.mktemp("fuzz-response")).start()
    yield started
    started.stop()


def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send a request (asking to close after it) and read all that comes back."""
    with socket.create_connection(address, timeout=10.0) as sock:
        sock.sendall(request)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass  # a cut after a relayed head: what came before still counts
    return got


def check(engine: ResponseFuzzEngine, answer: bytes, cuts: list[int]) -> None:
    engine.errors.clear()  # each example on its own, so that hypothesis can shrink a failure
    engine.logged.records.clear()
    engine.raw.answer, engine.raw.cuts = answer, cuts
    got = exchange(engine.address, b"GET /fuzz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # Whatever came back is HTTP with a real status: the upstream's, or the engine's own 502.
    assert got.startswith(b"HTTP/1.1 "), (answer[:200], got[:200])
    assert 100 <= int(got[9:12]) <= 599, got[:200]
    head = got.partition(b"\r\n\r\n")[0].lower()
    if b"x-devamb-error: " in head:
        code = head.split(b"x-devamb-error: ")[1].split(b"\r\n")[0]
        assert code in (b"bad-response", b"upstream-closed"), (answer[:200], got[:300])
    assert b"Traceback" not in got
    alive = exchange(engine.address, b"GET /alive HTTP/1.1\r\nHost: x\r\nX-Devamb-Target: up\r\n"
                     b"Connection: close\r\n\r\n")
    assert alive.startswith(b"HTTP/1.1 200"), alive[:200]
    assert not engine.errors, engine.errors
    assert not engine.logged.records, engine.logged.records[0]


VALID = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
]
TOKENS = [b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\x00", b"\xff", b"0", b"-1", b"999",
          b"Content-Length: ", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
          b"HTTP/1.1", b"HTTP/9.9", b"99999999999999999999", b"ffffffff\r\n", b"\r\n\r\n",
          b"Connection: close", b"Connection: keep-alive", b"Upgrade: h2c", b"X: " + b"y" * 9000]
MUTATED_RESPONSES = mutations(VALID, TOKENS, most_repeats=200)
CUTS = st.lists(st.integers(0, 4096), max_size=4)


@fuzz(300)
@given(answer=st.binary(max_size=4096), cuts=CUTS)
def test_random_bytes_from_the_upstream(
    engine: ResponseFuzzEngine, answer: bytes, cuts: list[int]
) -> None:
    check(engine, answer, cuts)


@fuzz(600)
@given(answer=MUTATED_RESPONSES, cuts=CUTS)
def test_mutated_responses_from_the_upstream(
    engine: ResponseFuzzEngine, answer: bytes, cuts: list[int]
) -> None:
    check(engine, answer, cuts)
