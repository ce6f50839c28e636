"""Retries through the real proxy: conditions, idempotency, bodies, budget, backoff."""

from __future__ import annotations

import textwrap
from pathlib import Path

import aiohttp

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from tests.conftest import listen_url
from tests.policies.conftest import Clock
from tests.policies.flaky import FlakyUpstream


def profile(url: str, retries: str) -> str:
    return f"""
    services:
      api:
        listen: 0
        timeout: 5s
        targets: {{up: "{url}"}}
        retries: {retries}
    """


async def test_503_then_ok_is_retried_and_recorded(engine_for, flaky: FlakyUpstream) -> None:
    clock = Clock()
    engine = await engine_for(profile(flaky.url, "{attempts: 3, backoff: 100ms}"), clock)
    flaky.plan = ["503", "503", "ok"]
    async with aiohttp.ClientSession() as client:
        resp = await client.get(listen_url(engine, "api") + "/x")
        assert resp.status == 200 and await resp.text() == "ok after 3"
    record = engine.store.recent(1)[0]
    assert record.attempts == 3 and record.retried == ["upstream answered 503"] * 2
    assert len(clock.sleeps) == 2 and clock.sleeps[0] <= 0.1 and clock.sleeps[1] <= 0.2


async def test_attempts_exhausted_gives_the_last_answer(engine_for, flaky) -> None:
    engine = await engine_for(profile(flaky.url, "{attempts: 2}"))
    flaky.plan = ["503", "503", "ok"]
    async with aiohttp.ClientSession() as client:
        resp = await client.get(listen_url(engine, "api") + "/x")
        assert resp.status == 503 and await resp.text() == "failing with 503"
    assert len(flaky.seen) == 2


async def test_dropped_connection_is_retried_as_reset(engine_for, flaky) -> None:
    engine = await engine_for(profile(flaky.url, "{attempts: 3, on: [reset]}"))
    flaky.plan = ["drop", "ok"]
    async with aiohttp.ClientSession() as client:
        assert (await client.get(listen_url(engine, "api") + "/x")).status == 200
    assert engine.store.recent(1)[0].attempts == 2


async def test_post_is_not_retried_unless_unsafe(engine_for, flaky) -> None:
    engine = await engine_for(profile(flaky.url, "{attempts: 3}"))
    flaky.plan = ["503", "ok"]
    async with aiohttp.ClientSession() as client:
        assert (await client.post(listen_url(engine, "api") + "/x", data=b"1")).status == 503
    await engine.stop()
    engine = await engine_for(profile(flaky.url, "{attempts: 3, unsafe: true}"))
    flaky.plan, flaky.bodies = ["503", "ok"], []
    async with aiohttp.ClientSession() as client:
        resp = await client.post(listen_url(engine, "api") + "/x", data=b"same body")
        assert resp.status == 200
    assert flaky.bodies == [b"same body", b"same body"]  # the body was sent again


async def test_conditions_not_listed_are_not_retried(engine_for, flaky) -> None:
    engine = await engine_for(profile(flaky.url, "{attempts: 3, on: [connect-failure]}"))
    flaky.plan = ["503", "ok"]
    async with aiohttp.ClientSession() as client:
        assert (await client.get(listen_url(engine, "api") + "/x")).status == 503


async def test_connect_failure_retries_then_502(engine_for) -> None:
    engine = await engine_for(profile("http://127.0.0.1:1", "{attempts: 3}"))
    async with aiohttp.ClientSession() as client:
        resp = await client.get(listen_url(engine, "api") + "/x")
        assert resp.status == 502
    assert engine.store.recent(1)[0].attempts == 3


async def test_budget_caps_retries(engine_for, flaky) -> None:
    engine = await engine_for(profile(flaky.url, "{attempts: 5, budget: 0.2}"))
    flaky.default = "503"
    async with aiohttp.ClientSession() as client:
        for _ in range(20):
            await (await client.get(listen_url(engine, "api") + "/x")).read()
    retries = len(flaky.seen) - 20
    assert retries <= max(3, 0.2 * 20) + 1  # without a budget: 80 retries
    assert engine.services["api"].policy.budget.denied > 0  # type: ignore[union-attr]


async def test_per_try_timeout_moves_on_to_the_next_try(tmp_path: Path, flaky) -> None:
    (tmp_path / "devamb.yaml").write_text(
        textwrap.dedent(f"""
    services:
      api:
        listen: 0
        timeout: 5s
        per_try_timeout: 300ms
        targets: {{up: "{flaky.url}"}}
        retries: {{attempts: 2, on: [timeout], backoff: 1ms}}
    """)
    )
    engine = Engine(load_profile(tmp_path / "devamb.yaml"))
    await engine.start()
    try:
        flaky.plan = ["slow", "ok"]
        async with aiohttp.ClientSession() as client:
            resp = await client.get(listen_url(engine, "api") + "/x")
            assert resp.status == 200
        assert engine.store.recent(1)[0].retried == ["no response within 0.3s"]
    finally:
        await engine.stop()
