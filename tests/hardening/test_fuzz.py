"""Fuzzing with hypothesis: the HTTP front end (raw bytes, mutated valid requests) must never
crash or wedge the engine; the profile loader must load or raise ProfileError with positions,
never anything else. Example counts are bounded so the whole file runs in well under a minute."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.profile import ProfileError
from tests.hardening.fuzzing import fuzz, mutations
from tests.upstreams import HttpUpstream

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
# -- the HTTP front end ------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if "tests/upstreams.py" not in text:  # the test upstream's own, when a request is cut
            self.records.append(text)


class EngineThread:
    """An engine and an upstream on an event loop of their own, so tests can be plain sync code
    (as hypothesis wants) talking to it over blocking sockets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.errors: list[dict] = []  # type: ignore[type-arg]
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.logged = Collect()  # the front end logs a handler's unexpected exception
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.address: tuple[str, int] = ("", 0)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> EngineThread:
        logging.getLogger("devamb.proxy").addHandler(self.logged)
        self.thread.start()
        self.upstream = self.run(HttpUpstream("up").start())
        path = self.folder / "devamb.yaml"
        path.write_text(
            "services:\n  api:\n    listen: 0\n    timeout: 2s\n    target: up\n"
            f"    targets: {{up: \"{self.upstream.url}\", debug: echo}}\n"
        )
        self.engine = self.run(self._start_engine(path))
        self.address = self.engine.services["api"].bound
        return self

    @staticmethod
    async def _start_engine(path: Path) -> Engine:
        engine = Engine(load_profile(path))
        await engine.start()
        return engine

    def stop(self) -> None:
        self.run(self.engine.stop())
        self.run(self.upstream.stop())
        logging.getLogger("devamb.proxy").removeHandler(self.logged)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def engine_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineThread]:
    engine = EngineThread(tmp_path_factory.mktemp("fuzz")).start()
    yield engine
    engine.stop()


def exchange_raw(address: tuple[str, int], data: bytes, timeout: float = 2.0) -> bytes:
    """Send bytes, say we are done (half-close), read what comes back until the end.

    (The front end takes the client's EOF for leaving, as nginx does, so a complete request sent
    this way is cancelled rather than answered: what is fuzzed here is the parsing.)"""
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionError):
            return b""  # nothing more to say to this client: fine, as long as others are served
    return answer


def assert_serving(engine: EngineThread) -> None:
    with socket.create_connection(engine.address, timeout=5.0) as sock:
        sock.sendall(b"GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert not engine.errors, engine.errors
    assert not engine.logged.records, engine.logged.records[0]


VALID = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a/b?c=d&e HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Devamb-Target: debug\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://x/abs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: x\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\x00", b"\xff", b"0", b"-1",
          b"Content-Length: ", b"Transfer-Encoding: chunked", b"Host: ", b"HTTP/1.1",
          b"HTTP/9.9", b"99999999999999999999", b"ffffffff\r\n", b"%", b"%00", b"\r\n\r\n",
          b"Connection: close", b"Upgrade: h2c", b"X-Devamb-Target: nope"]
MUTATED_REQUESTS = mutations(VALID, TOKENS, most_repeats=50)


@fuzz(500)
@given(data=st.binary(max_size=4096))
def test_front_end_survives_random_bytes(engine_thread: EngineThread, data: bytes) -> None:
    exchange_raw(engine_thread.address, data)
    assert_serving(engine_thread)


@fuzz(1000)
@given(data=MUTATED_REQUESTS)
def test_front_end_survives_mutated_requests(engine_thread: EngineThread, data: bytes) -> None:
    answer = exchange_raw(engine_thread.address, data)
    # Whatever came back is HTTP: the engine never leaks a traceback or a half-written head.
    assert not answer or answer.startswith(b"HTTP/"), answer[:200]
    assert b"Traceback" not in answer and b" 500 " not in answer[:20]
    assert_serving(engine_thread)


# -- the profile loader ------------------------------------------------------------------------


def load_or_positioned_error(path: Path) -> None:
    try:
        load_profile(path, environ={})
    except ProfileError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1 and problem.col >= 1, problem
            assert problem.message, problem




@pytest.fixture(scope="module")
def profiles_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of profiles/ (with the mock files they refer to) to write mutants into."""
    folder = tmp_path_factory.mktemp("profiles") / "profiles"
    shutil.copytree(PROFILES, folder, ignore=shutil.ignore_patterns(".devamb"))  # not a run dir
    return folder


YAML_BITS = ["version: 1", "services:", "  api:", "    listen: ", "9001", "0", "'x:1'",
             "    targets:", "      a: ", "http://127.0.0.1:1", "echo", "tcp://h:1", "{", "}",
             "[", "]", "- ", ": ", "\n", "  ", "\t", "&a ", "*a", "<<: *a", "!!python/object ",
             "${X}", "${X:-d}", "$$", "~", "null", "true", "1e9", "-1", "10s", "64KiB", "'",
             '"', "#", "?", "|", ">", "%YAML 1.2", "---", "...", "\ufeff", "\x00", "\x08", "é",
             "&r [*r]", "&m {k: *m}", "!!python/object:os.system ", "!!binary ", "!!set ",
             "[" * 300, "{a: " * 300, "a:\n" + "  " * 80 + "b: 1"]


@fuzz(300)
@given(text=st.lists(st.sampled_from(YAML_BITS) | st.text(max_size=6), max_size=40).map("".join))
def test_profile_loader_on_yaml_ish_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_or_positioned_error(path)


@fuzz(300)
@given(
    name=st.sampled_from(sorted(p.name for p in PROFILES.glob("*.yaml"))),
    edits=st.lists(
        st.tuples(st.sampled_from(["drop", "dup", "indent", "dedent", "insert", "cut"]),
                  st.integers(0, 10_000), st.sampled_from(YAML_BITS) | st.text(max_size=4)),
        min_size=1, max_size=4,
    ),
)
def test_profile_loader_on_mutated_profiles(
    profiles_copy: Path, name: str, edits: list[tuple[str, int, str]]
) -> None:
    lines = (PROFILES / name).read_text().splitlines()
    for action, where, bit in edits:
        i = where % max(len(lines), 1)
        if not lines:
            lines = [bit]
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = "  " + lines[i]
        elif action == "dedent":
            lines[i] = lines[i][2:]
        elif action == "insert":
            col = where % (len(lines[i]) + 1)
            lines[i] = lines[i][:col] + bit + lines[i][col:]
        else:
            lines[i] = lines[i][: where % (len(lines[i]) + 1)]
    path = profiles_copy / f"mutant-{name}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    load_or_positioned_error(path)
