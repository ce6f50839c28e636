"""The engine's desks, through the Engine that composes them: what the wider suites do not
already reach (declared target capabilities, scenarios ended by a stop)."""

from __future__ import annotations

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream

ECHO = "services:\n  api:\n    listen: 0\n    target: e\n    targets: {e: echo}\n"


async def test_container_logs_are_refused_for_a_target_that_runs_nothing(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(ECHO)
    echo = engine.services["api"].targets["e"]
    assert echo.injected_headers() == {} and echo.spec.watched_files() == ()
    for service, target, words in (
        ("api", "e", "not a docker target"),
        ("api", "nope", "has no target 'nope'"),
        ("nope", "e", "no service 'nope'"),
    ):
        with pytest.raises(ControlError, match=words):
            async for _ in engine.container_logs(service, target, tail=1, follow=False):
                pass


async def test_curl_export_leaves_out_what_a_pool_target_adds(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(f"""\
        services:
          api:
            listen: 0
            target: p
            targets:
              p:
                endpoints: [{upstream.url}]
                headers: {{X-Team: payments}}
        """)
    pool = engine.services["api"].targets["p"]
    assert dict(pool.injected_headers()) == {"X-Team": "payments"}
    url = listen_url(engine, "api") + "/items"
    async with aiohttp.ClientSession() as client, client.get(url, headers={"X-Own": "1"}) as r:
        assert r.status == 200
    [first] = await engine.exchanges(1)
    recorded = {name for name, _ in (await engine.exchange(first["id"]))["request_headers"]}
    assert {"X-Own", "X-Team"} <= recorded  # as sent upstream
    command = await engine.export_curl(first["id"])
    assert f"{listen_url(engine, 'api')}/items" in command
    assert "X-Own" in command and "X-Team" not in command


async def test_a_stop_ends_the_running_scenarios(make_engine: EngineFactory) -> None:
    engine = await make_engine(ECHO + """\
scenarios:
  long:
    steps:
      - {at: 0s, service: api, add: {name: slow, kind: latency, delay: 10ms}}
      - {at: 1h, service: api, clear: true}
""")
    await engine.start_scenario("long")
    [run] = await engine.scenarios()
    assert run["running"] is True
    task = engine.desks.scenarios.runs["long"].task
    assert task is not None
    await engine.stop()
    assert task.done()
