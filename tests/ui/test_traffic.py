"""The traffic view: following, pausing, filtering, the detail screen, and high rates."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.message import Message
from textual.widgets import Static

from tests.ui.fake_control import FakeControl, exchange
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.messages import TrafficPending
from ui.screens.exchange_detail import ExchangeDetail
from ui.screens.main import MainScreen
from ui.widgets.traffic_list import TrafficList
from ui.widgets.traffic_pane import TrafficPane

SIZE = (100, 30)


def exchange_event(number: int, **fields) -> dict:
    return {"type": "exchange", "time": 0.0, "exchange": exchange(number, **fields)}


def body(text: str, size: int | None = None) -> dict:
    """A body record as the engine sends it (see devamb.inspect.redaction)."""
    captured = len(text.encode())
    return {
        "kind": "json",
        "text": text,
        "encoding": "utf-8",
        "data": text,
        "content_type": "application/json",
        "size": size or captured,
        "captured": captured,
        "truncated": bool(size and size > captured),
    }


def shown_ids(app) -> list[int]:
    return [row["id"] for row in app.main.query_one(TrafficList).rows]


async def test_follow_then_pause_with_space_then_follow_again(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)
        assert traffic.has_focus
        assert shown_ids(app)[-1] == 30 and traffic.cursor == 29  # history, cursor at the end
        fake.push(exchange_event(31))
        await until(pilot, lambda: shown_ids(app)[-1] == 31, "following")
        await pilot.press("space")
        pane = app.main.query_one(TrafficPane)
        assert not pane.following
        fake.push(exchange_event(32), exchange_event(33))
        await settled(pilot, fake)
        assert shown_ids(app)[-1] == 31  # paused: the list stands still
        assert "2 new" in str(pane.query_one("#traffic-state").render())
        await pilot.press("space")
        assert pane.following
        assert shown_ids(app)[-1] == 33


async def test_moving_the_cursor_up_pauses(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "up", "up")
        pane = app.main.query_one(TrafficPane)
        assert not pane.following
        assert pane.traffic_list.current is not None
        assert pane.traffic_list.current["id"] == 28
        fake.push(exchange_event(31))
        await settled(pilot, fake)
        assert pane.traffic_list.current["id"] == 28
        assert shown_ids(app)[-1] == 30


async def test_filter_by_service(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "f")  # All -> payments
        pane = app.main.query_one(TrafficPane)
        assert pane.service == "payments"
        assert {row["service"] for row in pane.traffic_list.rows} == {"payments"}
        fake.push(exchange_event(31, service="search", target="local"))
        fake.push(exchange_event(32, service="payments"))
        await until(pilot, lambda: shown_ids(app)[-1] == 32, "the new payments exchange")
        assert 31 not in shown_ids(app)
        await pilot.press("f", "f", "f")  # payments -> search -> cache -> all
        assert pane.service is None
        assert shown_ids(app)[-2:] == [31, 32]


async def test_enter_opens_the_detail_and_escape_returns(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "up", "enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        assert detail.exchange["id"] == 29
        text = " ".join(str(s.render()) for s in detail.query(".detail-note"))
        assert "not recorded" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_detail_shows_headers_timings_and_pretty_json_when_recorded() -> None:
    rich = exchange(
        7,
        method="POST",
        status=201,
        request_headers={"Content-Type": "application/json", "X-Request-Id": "r-7"},
        response_headers=[["Content-Type", "application/json"]],
        timings={"connect": 1.5, "first_byte": 40.0},
        request_body='{"amount": 1200, "currency": "EUR"}',
        response_body='{"id": "ch_7", "status": "succeeded"}',
        response_body_size=37,
    )
    app = make_app(FakeControl(history=[rich]), poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.connected.wait()
        await pilot.press("x", "enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        titles = [s.border_title for s in detail.query(".detail-section")]
        assert titles == [
            "Summary",
            "Request headers",
            "Response headers",
            "Timings",
            "Request body",
            "Response body (37B)",
        ]
        bodies = [s for s in detail.query(Static) if s.border_title == "Response body (37B)"]
        assert isinstance(bodies[0].content, Syntax)
        assert not detail.query(".detail-note")


async def test_a_flood_of_exchanges_is_batched_and_bounded() -> None:
    fake = FakeControl()
    messages: list[Message] = []
    app = make_app(fake, poll_status=False, traffic_capacity=1000)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settled(pilot, fake)
        await pilot.press("x")
        for number in range(1, 5001):
            fake.push(exchange_event(number))
        feed = app.feed
        assert feed is not None
        await until(pilot, lambda: app.traffic.serial + feed.dropped == 5000, "all exchanges")
        await until(pilot, lambda: shown_ids(app)[-1:] == [5000], "the list's redraw")
        assert len(app.traffic) == 1000
        assert len(shown_ids(app)) == 1000
        pending = [m for m in messages if isinstance(m, TrafficPending)]
        assert len(pending) < 100  # thousands of exchanges, a handful of UI updates


async def test_detail_loads_the_full_record_when_the_engine_has_it(fake: FakeControl) -> None:
    summary = fake.history[-1]
    fake.details[summary["id"]] = {
        **summary,
        "url": "https://payments.staging.example.com/refunds",
        "ttfb_ms": 1249.0,
        "attempts": 1,
        "faults": ["slow"],
        "request_headers": [["Content-Type", "application/json"]],
        "response_headers": [["Content-Type", "application/json"], ["Retry-After", "2"]],
        "request_body": body('{"charge": "ch_1042"}'),
        "response_body": body('{"error": "unavailable"}', size=4096),
        "redacted": True,
    }
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        await until(pilot, lambda: "url" in detail.exchange, "the full record")
        await pilot.pause()
        titles = [s.border_title for s in detail.query(".detail-section")]
        assert titles == [
            "Summary",
            "Request headers",
            "Response headers",
            "Request body (application/json, 21B)",
            "Response body (application/json, first 24B of 4.0K)",
        ]
        response = next(
            s for s in detail.query(".detail-section") if "Response body" in s.border_title
        )
        assert isinstance(response.content, Syntax)


async def test_detail_keeps_the_summary_when_the_record_is_gone(fake: FakeControl) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        await pilot.press("x", "enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        await pilot.pause()
        assert detail.query(".detail-note")


async def test_traffic_that_arrives_on_the_dashboard_shows_when_the_tab_opens(
    fake: FakeControl,
) -> None:
    app = make_app(fake, poll_status=False)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, fake)
        fake.push(exchange_event(31), exchange_event(32))
        await until(pilot, lambda: app.traffic.serial == 32, "the exchanges to arrive")
        await pilot.press("x")
        await until(pilot, lambda: shown_ids(app)[-1] == 32, "the list to catch up")
        assert app.main.query_one(TrafficList).cursor == 31
