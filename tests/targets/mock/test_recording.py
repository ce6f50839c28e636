"""Record real traffic, write the mock, stop the upstream: the mock answers the same."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import yaml
from click.testing import CliRunner

from devamb.control.events import ExchangeCompleted, Notice
from devamb.engine.core import Engine
from devamb.inspect.filter import FilterError
from devamb.targets.mock.recording import RecordingSession
from devamb.targets.mock.target import MockTarget
from tests.conftest import EngineFactory, listen_url
from tests.targets.mock.traffic import (
    CALLS,
    PNG,
    TOKEN,
    RecordedUpstream,
    live_profile,
    mock_profile,
    redacted,
    run_calls,
)
from tests.upstreams import HttpUpstream


async def record(engine: Engine, session: RecordingSession, count: int) -> None:
    """Feed the session from the engine's events, as `devamb record` does, until `count` came."""
    subscription = engine.bus.subscribe()

    async def feed() -> None:
        async for event in subscription:
            if isinstance(event, ExchangeCompleted) and event.record is not None:
                service = engine.services[event.record.service]
                session.add(event.record, service.redaction)

    task = asyncio.get_running_loop().create_task(feed())
    await run_calls(listen_url(engine, "api"))
    for _ in range(200):
        if len(session.observed) >= count:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    subscription.close()


async def test_record_then_replay_with_the_upstream_gone(
    tmp_path: Path,
    make_engine: EngineFactory,
    recorded_upstream: RecordedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    engine = await make_engine(live_profile(recorded_upstream.url))
    session = RecordingSession("api", to=tmp_path / "mocks" / "api.yaml")
    live = await run_calls(listen_url(engine, "api"))  # before recording: not kept
    assert session.observed == []
    recorded_upstream.counter = iter(range(1, 100))  # the same counts again
    await record(engine, session, len(CALLS))
    assert len(session.observed) == len(CALLS)
    path = session.write()
    await recorded_upstream.stop()

    text = path.read_text()
    assert TOKEN not in text and "hunter2" not in text and "abc123" not in text
    for volatile in ("X-Request-Id", "Date", "Server", "Content-Length"):
        assert f"{volatile}:" not in text
    document = yaml.safe_load(text)
    names = [r["name"] for r in document["routes"]]
    assert names.count("GET /users/1") == 1  # the same answer twice: one route
    counter = next(r for r in document["routes"] if r["name"] == "GET /counter")
    assert [s["body"] for s in counter["sequence"]] == ["count 1", "count 2", "count 3"]
    orders = [r for r in document["routes"] if r["name"] == "POST /orders"]
    assert [o["match"]["json"] for o in orders] == [
        {"kind": "book", "qty": 1}, {"kind": "pen", "qty": 3}, {"kind": "book", "qty": 2},
    ]
    items = [r["match"].get("query") for r in document["routes"] if r["match"]["path"] == "/items"]
    assert items == [{"page": "2"}, {"page": "3"}, None]  # the most specific first
    logo = next(r for r in document["routes"] if r["name"] == "GET /logo.png")
    assert (path.parent / logo["respond"]["file"]).read_bytes() == PNG
    braces = next(r for r in document["routes"] if r["name"] == "GET /braces?x=1")
    assert braces["respond"]["template"] is False

    offline = await make_engine(mock_profile(recorded_upstream.url))
    replayed = await run_calls(listen_url(offline, "api"))
    assert replayed == redacted(live)
    mock = offline.services["api"].targets["mock"]
    assert isinstance(mock, MockTarget) and mock.details()["unmatched_count"] == 0


async def test_a_filter_chooses_what_is_recorded(
    tmp_path: Path, make_engine: EngineFactory, recorded_upstream: RecordedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    engine = await make_engine(live_profile(recorded_upstream.url))
    session = RecordingSession("api", filter="~u /items", to=tmp_path / "items.yaml")
    await record(engine, session, 3)
    assert [o.path for o in session.observed] == ["/items"] * 3
    assert session.to_json()["skipped"] == {"filtered out": len(CALLS) - 3}
    routes = session.routes()
    assert [(r.path, r.query) for r in routes] == [
        ("/items", [("page", "2")]), ("/items", [("page", "3")]), ("/items", []),
    ]
    with pytest.raises(FilterError):
        RecordingSession("api", filter="~c (", to=tmp_path / "x.yaml")


async def test_failed_and_faulted_exchanges_are_not_recorded(
    tmp_path: Path, make_engine: EngineFactory, recorded_upstream: RecordedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    engine = await make_engine(live_profile("http://127.0.0.1:9"))  # nothing listens
    session = RecordingSession("api", to=tmp_path / "none.yaml")
    await record(engine, session, 0)
    await asyncio.sleep(0.05)
    assert session.observed == []
    assert session.to_json()["skipped"] == {"failed": len(CALLS)}
    path = session.write()
    assert yaml.safe_load(path.read_text())["routes"] == []


def test_recorded_json_stays_json(tmp_path: Path) -> None:
    from tests.targets.mock.test_writer import draft_file

    text = draft_file(tmp_path)
    assert json.dumps(yaml.safe_load(text)["routes"][0]["respond"]["json"]) == (
        '{"id": 1, "price": 9.5, "ok": true, "none": null, "list": [1, "two"]}'
    )


async def test_the_limit_is_said_in_a_notice_the_result_and_the_file(
    tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(
        f"services:\n  api:\n    listen: 0\n    targets: {{up: {upstream.url}}}\n"
    )
    subscription = engine.bus.subscribe()
    started = await engine.start_recording("api", to=str(tmp_path / "api.yaml"))
    assert started["limit"] == 5000 and started["dropped"] == 0
    engine.desks.recording.sessions["api"].limit = 3  # as if 5,000 had come
    async with aiohttp.ClientSession() as client:
        for i in range(5):
            await (await client.get(f"{listen_url(engine, 'api')}/n/{i}")).read()
    session = engine.desks.recording.sessions["api"]
    for _ in range(200):
        if session.dropped == 2:
            break
        await asyncio.sleep(0.01)
    subscription.close()
    notices = []
    while (event := await subscription.get()) is not None:
        if isinstance(event, Notice) and event.level == "warning":
            notices.append(event.message)
    assert notices == [
        "recording api reached its limit of 3 exchanges: later exchanges were not recorded; "
        "stop it and record again for more"
    ]
    [written] = await engine.stop_recording()
    assert (written["recorded"], written["limit"], written["dropped"]) == (3, 3, 2)
    assert "reached its limit of 3 exchanges: 2 later exchanges were not recorded" in (
        Path(written["file"]).read_text()
    )


def test_record_stop_says_what_the_limit_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from devamb.cli import mocks as cli_mocks

    result = {"service": "api", "recorded": 5000, "limit": 5000, "dropped": 17, "file": "m.yaml"}
    monkeypatch.setattr(cli_mocks, "call", lambda *args: args)
    monkeypatch.setattr(
        cli_mocks, "run",
        lambda call: [result] if call[1] == "stop_recording" else {**result, "to": "m.yaml"},
    )
    out = CliRunner().invoke(cli_mocks.record, ["stop"]).output
    assert out == (
        "api: 5000 exchanges -> m.yaml\n"
        "  the recording reached its limit of 5000 exchanges: 17 later ones were not recorded\n"
    )
    out = CliRunner().invoke(cli_mocks.record, ["api"]).output
    assert "(the first 5000 exchanges)" in out
