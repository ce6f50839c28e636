"""Snapshots of the main screens at fixed sizes, with fixed data (a fake engine, a fixed clock).

Update the baselines with `pytest tests/ui/test_snapshots.py --snapshot-update` and look at
`snapshot_report.html` when one fails.
"""

from __future__ import annotations

from textual.pilot import Pilot

from tests.ui.fake_control import T0, FakeControl, demo_exchanges, demo_stats_events, exchange
from tests.ui.waiting import settled
from ui.app import DevambApp, make_app


def demo_app(history=None, restart=None) -> tuple[DevambApp, FakeControl]:
    fake = FakeControl(history=history if history is not None else demo_exchanges(40))
    fake.push(*demo_stats_events())
    fake.push({"type": "notice", "time": T0 + 20, "level": "warning", "message": "local: 503"})
    fake.push(
        {
            "type": "switched",
            "time": T0 + 21,
            "service": "search",
            "target": "local",
            "previous": "debug",
        }
    )
    app = make_app(fake, poll_status=False, clock=lambda: T0, restart=restart)
    return app, fake


def settle(fake: FakeControl):
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, fake)
        pilot.app.clear_notifications()

    return run_before


def test_dashboard(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), terminal_size=(100, 30))


def test_dashboard_80x24(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), terminal_size=(80, 24))


def test_dashboard_light(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["ctrl+t"], terminal_size=(100, 30))


def test_target_picker(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["t"], terminal_size=(100, 30))


def test_traffic_list(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["x"], terminal_size=(100, 30))


def test_traffic_list_paused_80x24(snap_compare) -> None:
    app, fake = demo_app()
    press = ["x", "up", "up", "up"]
    assert snap_compare(app, run_before=settle(fake), press=press, terminal_size=(80, 24))


def test_exchange_detail(snap_compare) -> None:
    recorded = exchange(
        41,
        method="POST",
        path="/charges",
        status=201,
        duration_ms=84.2,
        request_headers={"Content-Type": "application/json", "Authorization": "Bearer ••••"},
        response_headers={"Content-Type": "application/json", "X-Request-Id": "req_8c1f"},
        timings={"connect": 1.2, "first_byte": 80.4, "total": 84.2},
        request_body='{"amount": 1200, "currency": "EUR", "customer": "cus_42"}',
        response_body='{"id": "ch_1042", "status": "succeeded", "amount": 1200}',
        response_body_size=56,
    )
    app, fake = demo_app([*demo_exchanges(40), recorded])
    assert snap_compare(app, run_before=settle(fake), press=["x", "enter"], terminal_size=(100, 40))


def test_exchange_detail_summary_only(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(app, run_before=settle(fake), press=["x", "enter"], terminal_size=(80, 24))


def test_engine_died(snap_compare) -> None:
    async def restart() -> FakeControl:
        return FakeControl()

    app, fake = demo_app(restart=restart)

    async def run_before(pilot: Pilot) -> None:
        await settle(fake)(pilot)
        fake.die(
            "lost the engine on /home/dev/shop/.devamb/engine.sock "
            "(Response payload is not completed: <ContentLengthError: 400>)"
        )
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=(80, 24))


def test_help(snap_compare) -> None:
    app, fake = demo_app()
    assert snap_compare(
        app, run_before=settle(fake), press=["question_mark"], terminal_size=(100, 30)
    )
