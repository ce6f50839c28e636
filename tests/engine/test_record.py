"""Record a service's traffic into a mock file, then serve the same answers with the upstream
gone — through the engine's control methods and through the real CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import aiohttp
import pytest

from devamb.control.protocol import ControlError
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from tests.conftest import devamb
from tests.upstreams import HttpUpstream


async def test_record_then_work_offline(tmp_path: Path) -> None:
    upstream = await HttpUpstream("live").start()
    profile = tmp_path / "devamb.yaml"
    profile.write_text(textwrap.dedent(f"""
    services:
      api:
        listen: 0
        targets: {{live: "{upstream.url}"}}
    """))
    engine = Engine(load_profile(profile))
    await engine.start()
    host, port = engine.services["api"].bound  # type: ignore[misc]
    url = f"http://{host}:{port}"
    try:
        with pytest.raises(ControlError, match="bad filter"):
            await engine.start_recording("api", filter="~c 6xx")
        await engine.start_recording("api", filter="! ~u skip")
        answers = {}
        async with aiohttp.ClientSession() as client:
            for path in ("/users/1", "/users/2?full=1", "/skip/this"):
                async with client.get(url + path) as resp:
                    answers[path] = (resp.status, await resp.json())
            async with client.post(url + "/orders", json={"item": "book"}) as resp:
                answers["POST /orders"] = (resp.status, await resp.json())
        [written] = await engine.stop_recording()
        assert written["recorded"] == 3 and Path(written["file"]) == tmp_path / "mocks/api.yaml"
    finally:
        await engine.stop()
        await upstream.stop()  # from here on, only the mock can answer

    mock = "target: recorded\n    targets: {recorded: {mock: mocks/api.yaml}, live:"
    profile.write_text(profile.read_text().replace("targets: {live:", mock))
    engine = Engine(load_profile(profile))
    await engine.start()
    host, port = engine.services["api"].bound  # type: ignore[misc]
    url = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as client:
            for path in ("/users/1", "/users/2?full=1"):
                async with client.get(url + path) as resp:
                    assert (resp.status, await resp.json()) == answers[path]
            async with client.post(url + "/orders", json={"item": "book"}) as resp:
                assert (resp.status, await resp.json()) == answers["POST /orders"]
            async with client.get(url + "/skip/this") as resp:
                assert resp.status == 404  # filtered out of the recording: unmatched
    finally:
        await engine.stop()


async def test_record_and_import_har_through_the_cli(tmp_path: Path, upstream: HttpUpstream
                                                     ) -> None:
    (tmp_path / "devamb.yaml").write_text(
        f"services:\n  api:\n    listen: 0\n    targets: {{up: \"{upstream.url}\"}}\n")
    try:
        assert (await devamb("up", "--detach", cwd=tmp_path))[0] == 0
        rc, out, err = await devamb("record", "api", "--to", "recorded.yaml", cwd=tmp_path)
        assert rc == 0 and "recording api" in out, err
        _, status, _ = await devamb("status", "--json", cwd=tmp_path)
        listen = json.loads(status)["services"][0]["listen"]
        assert json.loads(status)["recordings"][0]["service"] == "api"
        async with aiohttp.ClientSession() as client:
            await (await client.get(f"http://{listen}/hello")).read()
        rc, out, _ = await devamb("record", "stop", cwd=tmp_path)
        assert rc == 0 and "api: 1 exchanges" in out
        assert "/hello" in (tmp_path / "recorded.yaml").read_text()
        assert (await devamb("export", "har", "t.har", cwd=tmp_path))[0] == 0
        rc, out, err = await devamb("mock", "import-har", "t.har", "--to", "from-har.yaml",
                                    cwd=tmp_path)
        assert rc == 0 and "wrote 1 routes" in out, err
        assert "/hello" in (tmp_path / "from-har.yaml").read_text()
    finally:
        await devamb("down", cwd=tmp_path)
