"""No value from ${VAR} may appear in any output: logs, status, traffic, details, exports."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import aiohttp

from tests.test_cli import devamb
from tests.upstreams import HttpUpstream

SECRET = "tok-9f8e7d6c5b4a"
URL_SECRET = "qk-1a2b3c4d5e6f"


async def test_secrets_never_reach_any_output(tmp_path: Path, upstream: HttpUpstream) -> None:
    (tmp_path / ".env").write_text(f"API_TOKEN={SECRET}\nQUERY_KEY={URL_SECRET}\n")
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent(f"""
    services:
      api:
        listen: 0
        target: up
        targets:
          up:
            url: "{upstream.url}/base?key=${{QUERY_KEY}}"
            headers: {{Authorization: "Bearer ${{API_TOKEN}}", X-Plain: "${{API_TOKEN}}"}}
          broken: "http://127.0.0.1:1/${{QUERY_KEY}}"
    """))
    outputs: list[str] = []
    try:
        rc, out, err = await devamb("up", "--detach", cwd=tmp_path)
        assert rc == 0, err
        outputs += [out, err]
        rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
        listen = json.loads(out)["services"][0]["listen"]
        outputs.append(out)
        async with aiohttp.ClientSession() as client:
            # the upstream echoes every header it got, so the response bodies carry the secret
            await (await client.get(f"http://{listen}/echo?x={SECRET}")).read()
            await (await client.post(f"http://{listen}/p", json={"token": SECRET})).read()
        for args in (("switch", "api", "broken"),):
            outputs += list((await devamb(*args, cwd=tmp_path))[1:])
        async with aiohttp.ClientSession() as client:
            await (await client.get(f"http://{listen}/after-switch")).read()
        for args in (
            ("status",), ("status", "--json"), ("traffic",), ("traffic", "--json"),
            ("show", "1"), ("show", "1", "--json"), ("show", "2", "--json"), ("show", "3"),
            ("export", "curl", "1"), ("export", "har", str(tmp_path / "out.har")),
            ("replay", "1", "--diff"),
        ):
            rc, out, err = await devamb(*args, cwd=tmp_path)
            assert rc == 0, (args, err)
            outputs += [out, err]
        outputs.append((tmp_path / "out.har").read_text())
    finally:
        await devamb("down", cwd=tmp_path)
    outputs.append((tmp_path / ".devamb" / "engine.log").read_text())
    outputs.append((tmp_path / ".devamb" / "state.json").read_text())
    everything = "\n".join(outputs)
    assert "Bearer" in everything and "/after-switch" in everything  # the outputs are real
    for secret in (SECRET, URL_SECRET):
        assert secret not in everything, f"{secret} leaked"
    assert os.path.getsize(tmp_path / "out.har") > 200
