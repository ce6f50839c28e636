"""No value from ${VAR} may appear in any output: logs, status, traffic, details, exports."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path
from urllib.parse import quote

import aiohttp

from tests.conftest import devamb
from tests.upstreams import HttpUpstream

SECRET = "tok-9f8e7d6c5b4a"
URL_SECRET = "qk-1a2b3c4d5e6f"
HOST_SECRET = "Hs-7G8h9J0k"  # mixed case: a host name reaches the outputs lowercased
PASSWORD = "Pw-3x4Y5z6W/+"  # in a URL's userinfo: sent (and hidden) as a Basic credential


def forms(secret: str) -> set[str]:
    """Every form a leak of `secret` may take in an output."""
    out = {secret, secret.lower(), secret.upper(), quote(secret, safe=""), quote(secret.lower())}
    for raw in (secret.encode(), f"admin:{secret}".encode()):
        out.add(base64.b64encode(raw).decode().rstrip("="))
        out.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    return out


async def test_secrets_never_reach_any_output(tmp_path: Path, upstream: HttpUpstream) -> None:
    (tmp_path / ".env").write_text(
        f"API_TOKEN={SECRET}\nQUERY_KEY={URL_SECRET}\nHOST={HOST_SECRET}\n"
        f"PASSWORD={quote(PASSWORD, safe='')}\n"
    )
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
          creds: "{upstream.url.replace("://", "://admin:${{PASSWORD}}@")}/c"
          nohost: "http://${{HOST}}.invalid"
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
            for target in ("creds", "nohost"):  # the upstream echoes the Basic credential
                answer = await client.get(f"http://{listen}/t", headers={"X-Devamb-Target": target})
                outputs += [await answer.text(), str(list(answer.headers.items()))]
        for args in (
            ("status",), ("status", "--json"), ("traffic",), ("traffic", "--json"),
            ("show", "1"), ("show", "1", "--json"), ("show", "2", "--json"), ("show", "3"),
            ("show", "4", "--json"), ("show", "5", "--json"), ("export", "curl", "4"),
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
    assert "Basic" in everything and ".invalid" in everything
    lowered = everything.lower()
    for secret in (SECRET, URL_SECRET, HOST_SECRET, PASSWORD):
        assert secret.lower() not in lowered, f"{secret} leaked"
        assert [f for f in forms(secret) if f in everything] == [], f"{secret} leaked"
    assert os.path.getsize(tmp_path / "out.har") > 200
