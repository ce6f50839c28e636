"""HAR import: devamb's own export of real traffic, and a browser-style HAR, become mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devamb.inspect.masking import MASK
from devamb.inspect.redaction import Redaction
from devamb.targets.mock.har import HarError, load_har, observed_from_har, routes_from_har
from devamb.targets.mock.writer import write_mock_file
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


async def test_a_har_of_real_traffic_replays_with_the_upstream_gone(
    tmp_path: Path,
    make_engine: EngineFactory,
    recorded_upstream: RecordedUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    engine = await make_engine(live_profile(recorded_upstream.url))
    live = await run_calls(listen_url(engine, "api"))
    har_path = tmp_path / "traffic.har"
    har_path.write_text(json.dumps(await engine.export_har()))
    await recorded_upstream.stop()

    har = load_har(har_path)
    observed, left_out = observed_from_har(har)
    assert (len(observed), left_out) == (len(CALLS), 0)
    path = write_mock_file(routes_from_har(har), tmp_path / "mocks" / "api.yaml")
    text = path.read_text()
    assert TOKEN not in text and "hunter2" not in text
    assert "# binary body from the HAR's base64 text" in text
    logo = next(r for r in yaml.safe_load(text)["routes"] if r["name"] == "GET /logo.png")
    assert (path.parent / logo["respond"]["file"]).read_bytes() == PNG

    offline = await make_engine(mock_profile(recorded_upstream.url))
    assert await run_calls(listen_url(offline, "api")) == redacted(live)


def browser_entry(url: str, status: int, **response: Any) -> dict[str, Any]:
    return {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "request": {
            "method": "get",
            "url": url,
            "headers": [{"name": "Cookie", "value": "sid=topsecret"}],
        },
        "response": {
            "status": status,
            "headers": [
                {"name": "Set-Cookie", "value": "sid=topsecret; HttpOnly"},
                {"name": "Date", "value": "Thu, 01 Jan 2026 00:00:00 GMT"},
                {"name": "Content-Type", "value": "application/json"},
            ],
            "content": response.get("content", {"mimeType": "application/json", "text": "{}"}),
        },
    }


def test_a_browser_har_is_redacted_and_failed_entries_left_out(tmp_path: Path) -> None:
    har = {"log": {"version": "1.2", "entries": [
        browser_entry("https://api.example.com/me?lang=en", 200, content={
            "mimeType": "application/json", "text": '{"name": "ada", "token": "t0ken"}',
        }),
        browser_entry("https://api.example.com/blocked", 0),
    ]}}
    observed, left_out = observed_from_har(har)
    assert left_out == 1
    (only,) = observed
    assert (only.method, only.path, only.query) == ("GET", "/me", [("lang", "en")])
    assert only.answer.headers == [
        ("Set-Cookie", f"sid={MASK}; HttpOnly"), ("Content-Type", "application/json"),
    ]
    assert only.answer.json == {"name": "ada", "token": "t0ken"}  # name a field to mask it:
    masked, _ = observed_from_har(har, Redaction.from_names(["token"]))
    assert masked[0].answer.json == {"name": "ada", "token": MASK}


def test_files_that_are_not_har_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.har").write_text('{"log": {}}')
    with pytest.raises(HarError, match=r"is not a HAR file: no log\.entries"):
        load_har(tmp_path / "x.har")
    with pytest.raises(HarError, match="cannot read HAR file"):
        load_har(tmp_path / "missing.har")


def test_http2_entries_are_read_without_pseudo_headers_and_grpc_left_out() -> None:
    h2 = browser_entry("https://api.example.com/v2/me", 200, content={
        "mimeType": "application/json", "text": '{"v": 2}',
    })
    h2["request"]["httpVersion"] = h2["response"]["httpVersion"] = "h2"  # as Chrome writes it
    h2["request"]["headers"] = [{"name": ":authority", "value": "api.example.com"}]
    h2["response"]["headers"] = [{"name": ":status", "value": "200"},
                                 {"name": "content-type", "value": "application/json"}]
    grpc = browser_entry("https://api.example.com/shop.Cart/Add", 200, content={
        "mimeType": "application/grpc", "text": "AAAAAAA=", "encoding": "base64",
    })
    har = {"log": {"version": "1.2", "entries": [h2, grpc]}}
    observed, left_out = observed_from_har(har)
    assert left_out == 1
    (only,) = observed
    assert only.path == "/v2/me" and only.answer.json == {"v": 2}
    assert only.answer.headers == [("content-type", "application/json")]
