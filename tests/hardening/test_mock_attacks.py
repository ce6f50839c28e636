"""Requests made to break a mock: a value that makes a regex backtrack, header templates fed line
breaks and control characters, a JSON body nested 100,000 deep. The engine answers each as the
mock or the README says, records what it answered, never freezes, never prints a traceback.

Real engine process (`devamb up --headless`), real sockets, every wait bounded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.hardening.engine_process import EngineProcess

PROFILE = """
version: 1
services:
  api:
    listen: 0
    target: mock
    targets:
      mock: {mock: mocks/api.yaml}
  other:
    listen: 0
    target: mock
    targets:
      mock: {mock: {routes: [{match: {path: /ping}, respond: {body: pong}}]}}
"""

MOCK = """
routes:
  - match: {path: /evil, query: {n: {regex: "(a+)+$"}}}
    respond: {body: matched}
  - match: {path: /go}
    respond:
      status: 302
      headers: {Location: "{{query.next}}"}
  - match: {path: /echo}
    respond:
      headers: {X-Echo: "{{query.v}}"}
      body: ok
  - match: {path: /deep, json: {a: {regex: "1+"}}}
    respond: {body: json-route}
  - match: {path: /deep}
    respond: {status: 201, body: "a={{json.a|none}}"}
"""

EVIL = "a" * 40 + "!"  # (a+)+$ backtracks 2^40 times on this in Python's re
TIMEOUT = aiohttp.ClientTimeout(total=10)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EngineProcess]:
    (tmp_path / "mocks").mkdir()
    (tmp_path / "mocks" / "api.yaml").write_text(textwrap.dedent(MOCK))
    proc = EngineProcess(tmp_path, PROFILE)
    try:
        yield await proc.start()
    finally:
        await proc.close()


async def _url(engine: EngineProcess, service: str) -> str:
    host, port = await engine.address(service)
    return f"http://{host}:{port}"


async def _recorded(engine: EngineProcess, path: str) -> dict:  # type: ignore[type-arg]
    for _ in range(100):
        found = [e for e in await engine.control.exchanges(limit=1000) if e.get("path") == path]
        if found:
            return found[-1]  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no exchange recorded for {path}")


def _no_traceback(engine: EngineProcess) -> None:
    assert "Traceback" not in engine.log(), engine.log()


async def test_backtracking_regex_does_not_freeze_the_engine(engine: EngineProcess) -> None:
    api, other = await _url(engine, "api"), await _url(engine, "other")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:

        async def evil() -> tuple[int, str]:
            async with client.get(f"{api}/evil", params={"n": EVIL}) as resp:
                return resp.status, resp.headers.get("x-devamb-error", "")

        attack = asyncio.create_task(evil())
        for _ in range(5):  # while the evil request is in the engine, everything else answers
            async with client.get(f"{other}/ping") as resp:
                assert await resp.text() == "pong"
            status = await asyncio.wait_for(engine.control.status(), 10)
            assert {s["name"] for s in status["services"]} == {"api", "other"}
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(attack, 15) == (404, "no-mock-route")  # no match, quickly
        async with client.get(f"{api}/evil", params={"n": "aaaa"}) as resp:
            assert await resp.text() == "matched"  # the regex still does its job
    _no_traceback(engine)


async def test_a_backtracking_traffic_filter_does_not_freeze_the_engine(
    engine: EngineProcess,
) -> None:
    """Filters run in the engine, over every kept body: they are user regexes too."""
    api, other = await _url(engine, "api"), await _url(engine, "other")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        async with client.post(f"{api}/deep", data=EVIL.encode()) as resp:
            assert resp.status == 201
        await _recorded(engine, "/deep")
        listed = await asyncio.wait_for(
            engine.control.exchanges(limit=10, filter='~bq "(a+)+$"'), 15
        )
        assert listed == []  # the body ends in '!': no match, and at once
        async with client.get(f"{other}/ping") as resp:
            assert await resp.text() == "pong"
    _no_traceback(engine)


def test_unsupported_regex_is_refused_at_validation_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "mocks").mkdir()
    (tmp_path / "mocks" / "api.yaml").write_text(
        "routes:\n  - match: {query: {n: {regex: '(a)\\1'}}}\n    respond: {}\n"
        "  - match: {query: {m: {regex: '(?=x)y'}}}\n    respond: {}\n"
    )
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent(PROFILE))
    done = subprocess.run(
        [sys.executable, "-m", "devamb", "validate", str(tmp_path / "devamb.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "api.yaml:2:32: routes[0].match.query.n.regex: bad regex '(a)\\\\1': " \
        "a backreference \\1 is not supported" in out, out
    assert "api.yaml:4:32: routes[1].match.query.m.regex: bad regex '(?=x)y': " \
        "lookahead (?=…) is not supported" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("path", ["/go", "/echo"])
async def test_header_template_fed_control_characters_answers_500(
    engine: EngineProcess, path: str
) -> None:
    api = await _url(engine, "api")
    name = "next" if path == "/go" else "v"
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        for i, value in enumerate(["%0d%0aX-Injected:%20yes", "%0aX", "%0dX", "%00", "%01", "%7f"]):
            target = f"{path}?{name}={value}&i={i}"
            url = URL(f"{api}{target}", encoded=True)  # sent as written
            async with client.get(url, allow_redirects=False) as resp:
                assert resp.status == 500, (value, resp.status)
                assert resp.headers["x-devamb-error"] == "bad-mock-response"
                assert "X-Injected" not in resp.headers
                assert "control characters" in (await resp.json())["reason"]
            record = await _recorded(engine, target)
            assert record["status"] == 500 and "control characters" in record["error"]
        async with client.get(f"{api}{path}?{name}=/fine%09tab", allow_redirects=False) as resp:
            assert resp.status in (200, 302)  # a tab is allowed in a value
    _no_traceback(engine)


async def test_json_body_nested_100000_deep_is_an_unparsable_body(engine: EngineProcess) -> None:
    api = await _url(engine, "api")
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        for body in (deep, b"[" * 100_000 + b"]" * 100_000):
            async with client.post(f"{api}/deep", data=body,
                                   headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 201  # the route without JSON conditions, as for non-JSON
                assert await resp.text() == "a=none"
        async with client.post(f"{api}/deep", json={"a": 11}) as resp:
            assert await resp.text() == "json-route"  # a shallow body still matches
    _no_traceback(engine)
