"""The dashboard's SSH bastions panel (issue #21): each bastion's state, round trip, channels,
bytes and last error; a host key mismatch in red with both fingerprints. Hidden without
bastions (the other dashboard snapshots have none)."""

from __future__ import annotations

from typing import Any

from tests.ui.fake_control import T0, FakeControl, demo_exchanges, demo_stats_events, demo_status
from tests.ui.test_snapshots import settle
from ui.app import make_app
from ui.widgets.bastions_panel import BastionsPanel, bastion_lines

BASTIONS: list[dict[str, Any]] = [
    {"name": "staging", "address": "ssh://deploy@bastion.staging.example.com:22", "jump": [],
     "state": "up", "reason": None, "rtt_ms": 21.4, "channels": 3, "channels_total": 40,
     "bytes_in": 1_048_576, "bytes_out": 20_480, "connects": 2, "attempts": 2,
     "host_key": "SHA256:Jx0aWq", "cipher": "aes128-gcm@openssh.com",
     "last_error": "the SSH connection dropped: Server not responding to keepalive"},
    {"name": "inner", "address": "ssh://bastion.internal", "jump": ["staging"],
     "state": "down", "rtt_ms": None, "channels": 0, "channels_total": 0, "bytes_in": 0,
     "bytes_out": 0, "connects": 0, "attempts": 1, "host_key": None, "cipher": None,
     "reason": "host key mismatch for bastion.internal: the server offered SHA256:AAAA, "
               "~/.ssh/known_hosts has SHA256:BBBB; refused",
     "last_error": "host key mismatch"},
]


def test_lines() -> None:
    up, dropped, down, mismatch = [*bastion_lines(BASTIONS[0]), *bastion_lines(BASTIONS[1])]
    assert up.plain == (
        "staging  up · rtt 21.4 ms · 3 open (40 in all) · ↑20K ↓1.0M  "
        "ssh://deploy@bastion.staging.example.com:22"
    )
    assert dropped.plain.strip().startswith("last error: the SSH connection dropped")
    assert down.plain.startswith("inner  down · rtt - · 0 open (0 in all)")
    assert "SHA256:AAAA" in mismatch.plain and "SHA256:BBBB" in mismatch.plain
    assert mismatch.style == "red" and not mismatch.no_wrap


def app_with(bastions: list[dict[str, Any]] | None) -> tuple[Any, FakeControl]:
    status = demo_status()
    if bastions is not None:
        status["bastions"] = bastions
    fake = FakeControl(status=status, history=demo_exchanges(40))
    fake.push(*demo_stats_events())
    return make_app(fake, poll_status=False, clock=lambda: T0), fake


async def test_hidden_without_bastions() -> None:
    app, fake = app_with(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(fake)(pilot)
        assert not app.screen.query_one(BastionsPanel).display


def test_dashboard_with_bastions(snap_compare) -> None:
    app, fake = app_with(BASTIONS)
    assert snap_compare(app, run_before=settle(fake), terminal_size=(100, 30))
