"""Control refusals over the real unix socket: 400 bad arguments, 404 unknown names, 409 a state
that refuses the request; the client turns each back into the engine's ControlError."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devamb.control.protocol import Conflict, ControlError, NotFound
from tests.control.conftest import PROFILE as CONTROL_PROFILE
from tests.control.conftest import Serve, ServeProfile
from tests.ui.fake_control import FakeControl

PROFILE = CONTROL_PROFILE + """
scenarios:
  blip:
    steps:
      - {at: 0s, service: api, add: {name: blip, kind: abort, status: 503}}
"""


@pytest.fixture
async def api(serve_profile: ServeProfile):
    engine, server, client = await serve_profile(PROFILE)
    return engine, server.socket_path, client


async def _raw(socket: Path, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connector = aiohttp.UnixConnector(path=str(socket))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, "http://devamb" + path, json=body) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


BAD_ARGUMENTS = [
    ("POST", "/v1/switch", {"service": "api"}, "expected {service, target, on_switch?}"),
    ("POST", "/v1/switch", {"service": "api", "target": 7},
     "expected {service, target, on_switch?}"),
    ("GET", "/v1/exchanges?limit=many", None, "limit must be a whole number"),
    ("GET", "/v1/exchanges/abc", None, "an exchange id is a whole number"),
    ("GET", "/v1/exchanges?filter=~c%206xx", None, "bad filter"),
    ("GET", "/v1/events?filter=~c%206xx", None, "bad filter"),
    ("GET", "/v1/export/har?filter=(", None, "bad filter"),
    ("POST", "/v1/faults", {"service": "api"}, "expected {service, fault}"),
    ("POST", "/v1/faults", {"service": "api", "fault": {"kind": "nope"}}, "nope"),
    ("POST", "/v1/faults", {"service": "api", "fault": {"kind": "latency", "delay": "soon"}},
     "delay"),
    ("POST", "/v1/faults/toggle", {"service": "api", "name": "x", "enabled": "yes"},
     "expected {service, name, enabled}"),
    ("POST", "/v1/shutdown", {"grace": -1}, "grace must be a number of seconds, 0 or more"),
    ("POST", "/v1/shutdown", {"grace": "soon"}, "grace must be a number of seconds"),
    ("POST", "/v1/exchanges/1/replay", {"target": 5}, "target must be a string"),
    ("POST", "/v1/record/start", {"to": "x.yaml"}, "expected {service, to?, filter?}"),
    ("POST", "/v1/record/start", {"service": "api", "filter": "~c 6xx"}, "bad filter"),
    ("GET", "/v1/logs?service=api", None, "target is required"),
    ("GET", "/v1/logs?service=api&target=a&tail=all", None, "tail must be a whole number"),
    ("GET", "/v1/logs?service=api&target=a", None, "is not a docker target"),
    ("POST", "/v1/scenarios/start", {}, "expected {name}"),
]

UNKNOWN_NAMES = [
    ("POST", "/v1/switch", {"service": "nope", "target": "a"}, "no service 'nope'; known: api"),
    ("POST", "/v1/switch", {"service": "api", "target": "c"}, "has no target 'c'; known: a, b"),
    ("GET", "/v1/exchanges/999", None, "no exchange 999"),
    ("GET", "/v1/exchanges/999/curl", None, "no exchange 999"),
    ("POST", "/v1/exchanges/999/replay", {}, "no exchange 999"),
    ("GET", "/v1/faults?service=nope", None, "no service 'nope'"),
    ("POST", "/v1/faults", {"service": "nope", "fault": {"kind": "reset"}}, "no service"),
    ("POST", "/v1/faults/toggle", {"service": "api", "name": "x", "enabled": True},
     "has no fault 'x'"),
    ("POST", "/v1/faults/remove", {"service": "api", "name": "x"}, "has no fault 'x'"),
    ("POST", "/v1/faults/clear", {"service": "nope"}, "no service 'nope'"),
    ("POST", "/v1/scenarios/start", {"name": "nope"}, "no scenario 'nope'; known: blip"),
    ("POST", "/v1/scenarios/stop", {"name": "nope"}, "no scenario 'nope'"),
    ("POST", "/v1/record/start", {"service": "nope"}, "no service 'nope'"),
    ("GET", "/v1/logs?service=api&target=zz", None, "has no target 'zz'; known: a, b"),
    ("GET", "/v1/nope", None, "Not Found: GET /v1/nope"),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), BAD_ARGUMENTS)
async def test_bad_arguments_answer_400(api, method, path, body, message) -> None:
    _, socket, _ = api
    status, answer = await _raw(socket, method, path, body)
    assert (status, message in answer["error"]) == (400, True), answer


@pytest.mark.parametrize(("method", "path", "body", "message"), UNKNOWN_NAMES)
async def test_unknown_names_answer_404(api, method, path, body, message) -> None:
    _, socket, _ = api
    status, answer = await _raw(socket, method, path, body)
    assert (status, message in answer["error"]) == (404, True), answer


async def test_a_wrong_method_answers_405_with_an_error(api) -> None:
    _, socket, _ = api
    status, answer = await _raw(socket, "POST", "/v1/status")
    assert status == 405 and "POST /v1/status" in answer["error"]


async def test_state_conflicts_answer_409(api) -> None:
    _, socket, client = api
    status, answer = await _raw(socket, "POST", "/v1/record/stop", {"service": "api"})
    assert status == 409 and answer["error"] == "'api' is not being recorded"
    await client.start_recording("api")
    status, answer = await _raw(socket, "POST", "/v1/record/start", {"service": "api"})
    assert status == 409 and "'api' is already being recorded into" in answer["error"]
    [written] = await client.stop_recording("api")
    assert written["service"] == "api"


async def test_the_client_raises_the_engines_error_with_its_message(api) -> None:
    _, _, client = api
    with pytest.raises(NotFound, match="no service 'nope'; known: api") as unknown:
        await client.switch("nope", "a")
    assert unknown.value.status == 404 and unknown.value.code == 1
    with pytest.raises(ControlError, match="nope") as bad:
        await client.add_fault("api", {"kind": "nope"})
    assert bad.value.status == 400 and type(bad.value) is ControlError
    with pytest.raises(ControlError, match="bad filter") as bad_filter:
        await client.exchanges(10, "~c 6xx")
    assert bad_filter.value.status == 400
    with pytest.raises(ControlError, match="bad filter"):
        async for _ in client.events("~c 6xx"):
            pass
    with pytest.raises(NotFound, match="has no target 'zz'"):
        async for _ in client.container_logs("api", "zz"):
            pass
    with pytest.raises(NotFound, match="no exchange 5"):
        await client.export_curl(5)
    with pytest.raises(NotFound, match="no scenario"):
        await client.start_scenario("nope")
    with pytest.raises(Conflict, match="is not being recorded") as conflict:
        await client.stop_recording("api")
    assert conflict.value.status == 409


class _BreaksMidStream(FakeControl):
    """Its log stream gives one line, then is refused (as a docker target whose container
    went away)."""

    async def container_logs(
        self, service: str, target: str, tail: int = 200, follow: bool = True
    ) -> AsyncIterator[str]:
        yield "first line"
        raise Conflict("the container stopped")


async def test_a_refusal_in_the_middle_of_a_stream_reaches_the_client(serve: Serve) -> None:
    _, client = await serve(_BreaksMidStream())
    lines = []
    with pytest.raises(ControlError, match="the container stopped"):
        async for line in client.container_logs("payments", "box"):
            lines.append(line)
    assert lines == ["first line"]
