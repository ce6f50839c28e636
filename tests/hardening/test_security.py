"""Security defaults: listeners stay on loopback unless an address is written (then a warning
says so); TLS verification stays on unless turned off per target. (Control socket mode and
Origin checks: tests/control/test_api.py; secrets in outputs: tests/test_secrets.py.)"""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from devamb.engine.assembly import load_profile
from tests.certs import certificates
from tests.conftest import EngineFactory, listen_url

# -- listeners ---------------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["9001", "0", "'localhost:0'", "'127.0.0.1:0'"])
def test_listeners_default_to_loopback(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text(f"services:\n  api:\n    listen: {listen}\n    targets: {{a: echo}}\n")
    profile = load_profile(path)
    spec = profile.services["api"]
    assert spec.listen.is_loopback and spec.listen.host != "0.0.0.0"
    assert profile.warnings == ()


def test_non_loopback_listener_written_explicitly_is_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "devamb.yaml"
    path.write_text("services:\n  api:\n    listen: '0.0.0.0:9001'\n    targets: {a: echo}\n")
    result = subprocess.run(
        [sys.executable, "-m", "devamb", "validate", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "warning: service 'api' listens on 0.0.0.0:9001, which other machines can reach" in (
        result.stderr
    )


async def test_engine_logs_the_non_loopback_warning(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="devamb")
    monkeypatch.setattr(logging.getLogger("devamb"), "propagate", True)  # runner may unset it
    engine = await make_engine(
        "services:\n  api:\n    listen: '0.0.0.0:0'\n    targets: {a: echo}\n"
    )
    assert engine.services["api"].bound[0] == "0.0.0.0"
    assert any("which other machines can reach" in r.getMessage() for r in caplog.records)
    default = await make_engine("services:\n  web:\n    listen: 0\n    targets: {a: echo}\n")
    assert default.services["web"].bound[0] == "127.0.0.1"


# -- TLS verification --------------------------------------------------------------------------


@pytest.fixture
async def https_upstream(tmp_path: Path):
    pytest.importorskip("cryptography")
    ca, cert, key = certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": True, "path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}", ca
    await runner.cleanup()


async def test_tls_verification_is_on_by_default(make_engine: EngineFactory, https_upstream):
    url, ca = https_upstream
    engine = await make_engine(
        f"""
        services:
          api:
            listen: 0
            target: strict
            targets:
              strict: {url}
              insecure: {{url: "{url}", tls: {{verify: false}}}}
              trusted: {{url: "{url}", tls: {{ca: "{ca}"}}}}
        """
    )
    base = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        resp = await client.get(base + "/x")
        body = json.loads(await resp.read())
        assert resp.status == 502 and resp.headers["x-devamb-error"] == "connect-failed"
        assert body["service"] == "api" and body["target"] == "strict"
        assert "certificate verify failed" in body["reason"].lower(), body
        for name in ("insecure", "trusted"):
            resp = await client.get(base + "/y", headers={"X-Devamb-Target": name})
            assert resp.status == 200, await resp.text()
            assert (await resp.json()) == {"tls": True, "path": "/y"}
    [failed] = [e for e in engine.store.all() if e.target == "strict"]
    assert "certificate verify failed" in (failed.error or "").lower()
