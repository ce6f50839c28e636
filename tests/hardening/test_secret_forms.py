"""Secrets in target URLs (issue 15, bug 4): `user:${SECRET}@host` becomes `Authorization: Basic`
for the upstream (never userinfo in Host), and no output shows a secret in any form it takes on
the way (lowercased in a host name, URL-encoded, base64 inside a Basic credential)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import aiohttp

from devamb.control.client import ControlClient
from devamb.control.workdir import Workdir
from tests.conftest import devamb
from tests.hardening.raw_upstream import RawUpstream, read_body, read_head

SECRET = "Tok-Sec9F8e7d6C"  # mixed case: host names are lowercased on the way
HOST_SECRET = "HoSt-Q4w5E6r7"
USER = "admin"


def forms(secret: str) -> set[str]:
    """What a leak of `secret` looks like, in the forms a proxy produces."""
    raw = secret.encode()
    out = {secret, secret.lower(), secret.upper(), quote(secret, safe=""), quote(secret.lower())}
    for value in (raw, f"{USER}:{secret}".encode()):
        out.add(base64.b64encode(value).decode().rstrip("="))
        out.add(base64.urlsafe_b64encode(value).decode().rstrip("="))
    return out


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    found = [f for s in (SECRET, HOST_SECRET) for f in forms(s) if f in text]
    found += [s for s in (SECRET, HOST_SECRET) if s.lower() in lowered]
    return found


class RecordingUpstream(RawUpstream):
    """Answers every request 200 with the request head it got as the body (so the body holds
    the credential, as a debugging echo service would); keeps every head."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[str] = []
        self.handler = self._answer

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            await read_body(reader, head)
            self.heads.append(head.decode("latin-1"))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(head), head)
            )
            await writer.drain()


def fields(head: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in head.split("\r\n")[1:]:
        if ": " in line:
            name, value = line.split(": ", 1)
            out.setdefault(name.lower(), []).append(value)
    return out


async def _events(folder: Path, into: list[str], ready: asyncio.Event) -> None:
    async with ControlClient(Workdir.beside(folder / "devamb.yaml").socket, timeout=30) as ctl:
        stream = ctl.events()
        ready.set()
        async for event in stream:
            into.append(json.dumps(event))


async def test_url_credentials_become_basic_auth_and_no_output_shows_a_secret(
    tmp_path: Path,
) -> None:
    upstream = await RecordingUpstream().start()
    port = upstream.port
    (tmp_path / ".env").write_text(f"SECRET={SECRET}\nHOST_SECRET={HOST_SECRET}\n")
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent(f"""
    services:
      api:
        listen: 0
        timeout: 10s
        target: creds
        targets:
          creds: "http://{USER}:${{SECRET}}@127.0.0.1:{port}/base"
          pool:
            endpoints: ["http://{USER}:${{SECRET}}@127.0.0.1:{port}"]
            health: {{path: /healthz, interval: 1s, timeout: 2s}}
          nowhere: "http://${{HOST_SECRET}}.invalid/x"
          split: {{split: {{creds: 1}}, mirror: pool}}
    """))
    expected_auth = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    outputs: list[str] = []
    events: list[str] = []
    watcher: asyncio.Task[None] | None = None
    try:
        rc, out, err = await devamb("up", "--detach", cwd=tmp_path)
        assert rc == 0, err
        outputs += [out, err]
        rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
        listen = json.loads(out)["services"][0]["listen"]
        ready = asyncio.Event()
        watcher = asyncio.create_task(_events(tmp_path, events, ready))
        await asyncio.wait_for(ready.wait(), 30)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            for target in ("creds", "pool", "split"):
                async with client.get(
                    f"http://{listen}/get?x=1", headers={"X-Devamb-Target": target}
                ) as resp:
                    assert resp.status == 200, (target, await resp.text())
                    await resp.read()
            async with client.get(
                f"http://{listen}/dns", headers={"X-Devamb-Target": "nowhere"}
            ) as resp:
                assert resp.status == 502
                outputs.append(await resp.text())
                outputs.append(json.dumps(list(resp.headers.items())))
        for _ in range(200):  # the health check and the mirror copy reach the upstream too
            if any(h.startswith("GET /healthz") for h in upstream.heads) and len(
                _requests(upstream.heads)
            ) >= 4:
                break
            await asyncio.sleep(0.1)
        async with ControlClient(Workdir.beside(tmp_path / "devamb.yaml").socket) as ctl:
            outputs.append(await ctl.metrics())
        rc, out, _ = await devamb("traffic", "--json", cwd=tmp_path)
        ids = [str(json.loads(line)["id"]) for line in out.splitlines() if line.strip()]
        assert len(ids) >= 5, out  # creds, pool, split, its mirror copy, nowhere
        commands: list[tuple[str, ...]] = [
            ("status",), ("status", "--json"), ("traffic",), ("traffic", "--json"),
            ("export", "har", str(tmp_path / "out.har")), ("replay", ids[0], "--diff"),
        ]
        for exchange_id in ids:
            commands += [("show", exchange_id), ("show", exchange_id, "--json"),
                         ("export", "curl", exchange_id)]
        for args in commands:
            rc, out, err = await devamb(*args, cwd=tmp_path)
            assert rc == 0, (args, err)
            outputs += [out, err]
        outputs.append((tmp_path / "out.har").read_text())
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
        await devamb("down", cwd=tmp_path)
        await upstream.stop()
    outputs.append((tmp_path / ".devamb" / "engine.log").read_text())
    state = tmp_path / ".devamb" / "state.json"
    if state.exists():
        outputs.append(state.read_text())
    outputs += events

    heads = upstream.heads
    requests = _requests(heads)
    checks = [h for h in heads if h.startswith("GET /healthz")]
    assert len(requests) >= 4 and checks, heads  # creds, pool, split and its mirror copy, replay
    for head in requests + checks:
        got = fields(head)
        assert got["host"] == [f"127.0.0.1:{port}"], head
        assert got.get("authorization") == [expected_auth], head

    everything = "\n".join(outputs)
    assert "Basic" in everything and "/dns" in everything and "invalid" in everything
    assert leaks(everything) == [], [
        line for line in everything.splitlines() if leaks(line)
    ][:10]


async def test_a_secret_host_name_is_masked_lowercased_in_the_502_and_traffic(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(f"HOST_SECRET={HOST_SECRET}\n")
    (tmp_path / "devamb.yaml").write_text(
        "services:\n  api:\n    listen: 0\n    targets:\n"
        "      nowhere: 'http://${HOST_SECRET}.invalid'\n"
    )
    outputs: list[str] = []
    try:
        rc, _, err = await devamb("up", "--detach", cwd=tmp_path)
        assert rc == 0, err
        rc, out, _ = await devamb("status", "--json", cwd=tmp_path)
        listen = json.loads(out)["services"][0]["listen"]
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as client,
            client.get(f"http://{listen}/x?k={quote(HOST_SECRET)}") as resp,
        ):
            assert resp.status == 502
            outputs += [await resp.text(), json.dumps(list(resp.headers.items()))]
        for args in (("traffic", "--json"), ("show", "1"), ("status", "--json")):
            rc, out, err = await devamb(*args, cwd=tmp_path)
            assert rc == 0, (args, err)
            outputs += [out, err]
    finally:
        await devamb("down", cwd=tmp_path)
    outputs.append((tmp_path / ".devamb" / "engine.log").read_text())
    everything = "\n".join(outputs)
    assert "cannot connect to" in everything and ".invalid" in everything, everything
    assert leaks(everything) == [], everything


def _requests(heads: list[str]) -> list[str]:
    return [h for h in heads if h.startswith(("GET /get", "GET /base/get"))]


def _validate(folder: Path, profile: str) -> subprocess.CompletedProcess[str]:
    (folder / ".env").write_text(f"SECRET={SECRET}\n")
    (folder / "devamb.yaml").write_text(textwrap.dedent(profile))
    return subprocess.run(
        [sys.executable, "-m", "devamb", "validate", str(folder / "devamb.yaml")],
        capture_output=True, text=True, cwd=folder, timeout=60,
    )


def test_credentials_where_none_can_go_are_refused_with_a_position(tmp_path: Path) -> None:
    result = _validate(tmp_path, """\
    services:
      db:
        listen: 0
        protocol: tcp
        targets:
          a: "tcp://admin:${SECRET}@127.0.0.1:5432"
      api:
        listen: 0
        targets:
          b:
            url: "http://admin:${SECRET}@127.0.0.1:1"
            headers: {Authorization: "Bearer x"}
    """)
    assert result.returncode != 0
    err = result.stderr
    assert "devamb.yaml:6:10: " in err and "cannot carry credentials" in err, err
    assert "devamb.yaml:11:14: " in err and "headers sets Authorization too" in err, err
    assert leaks(result.stdout + err) == []


def test_a_literal_password_is_hidden_in_status_and_masked_like_a_secret(tmp_path: Path) -> None:
    from devamb.engine.assembly import load_profile

    path = tmp_path / "devamb.yaml"
    path.write_text(
        "services:\n  api:\n    listen: 0\n    targets:\n"
        f"      a: 'http://{USER}:{SECRET}@127.0.0.1:1'\n"
    )
    profile = load_profile(path)
    target = profile.services["api"].targets["a"]
    assert SECRET not in target.describe()
    assert SECRET in profile.secrets
