"""`devamb status` (text and --json) shows each bastion, from a detached engine, and the
TUI's target detail names a target's bastion with its state; a key passphrase from ${VAR}
is in none of it, nor in the engine's log."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from tests.conftest import devamb
from tests.sshd import Sshd, keygen
from tests.tunnel.conftest import bastion_yaml
from tests.upstreams import HttpUpstream
from ui.screens.target_detail import sections
from ui.widgets.bastions_panel import bastions_view
from ui.widgets.services_table import static_cells


async def test_status_shows_the_bastion(
    sshd: Sshd, tmp_path: Path, upstream: HttpUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "cli-passphrase-never-shown-7"
    locked = keygen(tmp_path / "locked", passphrase=secret)
    authorized = sshd.dir / "authorized_keys"
    authorized.write_text(authorized.read_text() + Path(f"{locked}.pub").read_text())
    monkeypatch.setenv("CLI_KEY_PASSPHRASE", secret)
    project = tmp_path / "project"
    project.mkdir()
    (project / "devamb.yaml").write_text(
        "version: 1\nbastions:\n"
        + bastion_yaml(sshd, tmp_path, identity_file=str(locked),
                       passphrase="${CLI_KEY_PASSPHRASE}")
        + "services:\n  api:\n    listen: 0\n    target: remote\n    targets:\n"
        f"      remote: {{url: '{upstream.url}', via: jump}}\n"
    )
    rc, _, err = await devamb("up", "--detach", cwd=project)
    assert rc == 0, err
    try:
        rc, out, _ = await devamb("status", "--json", cwd=project)
        status = json.loads(out)
        url = f"http://{status['services'][0]['listen']}/via/cli"
        async with aiohttp.ClientSession() as client, client.get(url) as response:
            assert response.status == 200
        rc, out, _ = await devamb("status", "--json", cwd=project)
        [bastion] = json.loads(out)["bastions"]
        assert bastion["name"] == "jump" and bastion["state"] == "up"
        assert bastion["channels_total"] >= 1 and bastion["bytes_in"] > 0
        assert bastion["host_key"].startswith("SHA256:") and bastion["cipher"]
        [target] = json.loads(out)["services"][0]["targets"]
        assert target["details"]["via"] == "jump"
        rc, text, _ = await devamb("status", cwd=project)
        assert rc == 0
        assert "bastion jump" in text and "up" in text and "channels open" in text
        for shown in (out, text):
            assert secret not in shown

        console = Console(width=120, record=True)
        for _, body in sections(target, json.loads(out)["bastions"]):
            console.print(body)
        screen = console.export_text()
        assert "Via" in screen and "jump · up" in screen
        panel = Console(width=120, record=True)  # the dashboard's bastions panel
        panel.print(bastions_view(json.loads(out)["bastions"]))
        assert "jump  up · rtt" in panel.export_text()
        service = json.loads(out)["services"][0]
        assert str(static_cells(service)["target"]) == "remote via jump"
    finally:
        await devamb("down", cwd=project)
    logs = "".join(p.read_text(errors="replace") for p in (project / ".devamb").glob("*.log"))
    assert secret not in logs
