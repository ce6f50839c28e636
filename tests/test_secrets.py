"""No value from ${VAR} may appear in any output: logs, status, traffic, details, exports."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import logging
import os
import textwrap
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from devamb.control.client import ControlClient
from devamb.control.server import ControlServer
from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.runner import configure_logging
from devamb.targets.base import TargetUnavailable
from devamb.targets.registry import KINDS
from devamb.targets.url import UrlTarget
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


NEW_SECRET = "Nw-Sec5R6t7Y"  # only in the profile's second version


class Unstartable(UrlTarget):
    """A URL target that cannot start, and says so quoting its URL (as a target kind may)."""

    async def start(self) -> None:
        raise TargetUnavailable(f"cannot start {self.spec.url}")


async def _collect(client: ControlClient, into: list[str], ready: asyncio.Event) -> None:
    stream = client.events()
    ready.set()
    async for event in stream:
        into.append(json.dumps(event))


async def test_every_event_and_a_failed_reload_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notice, a switch, faults, stats and a reload that fails on a target quoting a secret
    new in the edited profile: none shows a secret, in events (over the control socket),
    status or the log (through the engine's own log filter)."""
    (tmp_path / ".env").write_text(f"API_TOKEN={SECRET}\nNEWSECRET={NEW_SECRET}\n")
    profile = tmp_path / "devamb.yaml"
    profile.write_text(textwrap.dedent("""
    services:
      api:
        listen: 0
        target: a
        targets:
          a: echo
          b: "http://127.0.0.1:1/t?key=${API_TOKEN}"
    """))
    log = io.StringIO()
    first = load_profile(profile)
    logger = logging.getLogger("devamb")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    configure_logging(first, log)  # the engine process's own handler and secret filter
    engine = Engine(first)
    await engine.start()
    server = ControlServer(engine, tmp_path / ".devamb" / "engine.sock")
    await server.start()
    client = ControlClient(server.socket_path)
    events: list[str] = []
    ready = asyncio.Event()
    watcher = asyncio.create_task(_collect(client, events, ready))
    outputs: list[str] = []
    try:
        await asyncio.wait_for(ready.wait(), 30)
        for _ in range(300):  # the stream's request reaches the engine's bus
            if engine.bus.has_subscribers:
                break
            await asyncio.sleep(0.01)
        target = engine.ctx.services["api"].targets["b"]
        assert isinstance(target, UrlTarget)
        url = target.spec.url
        assert SECRET in url  # the real value: what a notice built from it would quote
        engine.notice("warning", f"target b of api answers slowly at {url}")
        await client.switch("api", "b")
        await client.add_fault("api", {"name": f"slow-{SECRET}", "kind": "latency",
                                       "delay": "1ms"})
        # the edited profile brings a new secret, in a target that cannot start
        monkeypatch.setitem(KINDS, "url", dataclasses.replace(KINDS["url"], build=Unstartable))
        profile.write_text(profile.read_text().replace(
            "a: echo", "a: echo\n      c: \"http://127.0.0.1:1/n?key=${NEWSECRET}\""
        ))
        assert not await engine.reload()
        status = await client.status()
        outputs.append(json.dumps(status))
        assert status["errors"] and "cannot start" in status["errors"][0], status
        for _ in range(100):
            if any('"rejected"' in e for e in events) and any('"stats"' in e for e in events):
                break
            await asyncio.sleep(0.1)
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        await client.close()
        await server.stop()
        await engine.stop()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    outputs += events
    outputs.append(log.getvalue())
    everything = "\n".join(outputs)
    kinds = {json.loads(e)["type"] for e in events}
    assert {"notice", "switched", "faults", "stats", "rejected"} <= kinds, kinds
    assert "answers slowly at http://127.0.0.1:1/t?key=" in everything  # the outputs are real
    assert "cannot start http://127.0.0.1:1/n?key=" in everything
    lowered = everything.lower()
    for secret in (SECRET, NEW_SECRET):
        assert secret.lower() not in lowered, f"{secret} leaked"
        assert [f for f in forms(secret) if f in everything] == [], f"{secret} leaked"
