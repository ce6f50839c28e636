"""gRPC calls in the TUI, from a real grpcio client through a real engine (a gRPC mock answering
from profiles/protos/ping.proto): the list names the call and its status, the detail shows the
status, the counts and each message decoded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from textual.widgets import Input, Select, TextArea

from tests.conftest import EngineFactory
from tests.ui.test_features import text_of
from tests.ui.waiting import settled, until
from ui.app import make_app
from ui.screens.exchange_actions import ExchangeScreen, ExportScreen
from ui.screens.exchange_detail import ExchangeDetail
from ui.screens.fault_form import FaultForm
from ui.screens.faults import FaultsScreen
from ui.widgets.traffic_columns import exchange_cells
from ui.widgets.traffic_list import TrafficList

PROTO = Path(__file__).parents[2] / "profiles" / "protos" / "ping.proto"
PROFILE = f"""
version: 1
services:
  pinger:
    listen: 0
    protocol: grpc
    target: mock
    proto: ["{PROTO}"]
    targets:
      mock:
        mock:
          grpc:
            - method: /demo.ping.Pinger/Ping
              response: {{text: pong, served_at: 1700000000}}
            - method: /demo.ping.Pinger/Watch
              status: UNAVAILABLE
              message: the mock does not stream
"""
PING = b"\x0a\x02hi"  # PingRequest{text: "hi"}


def _calls(port: int) -> list[grpc.StatusCode]:
    """Ping (answered) and Watch (refused by the mock), as a real client sees them."""
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        ping = channel.unary_unary("/demo.ping.Pinger/Ping")
        codes.append(ping.with_call(PING, timeout=10)[1].code())
        watch = channel.unary_stream("/demo.ping.Pinger/Watch")
        with pytest.raises(grpc.RpcError) as failed:
            list(watch(PING, timeout=10))
        codes.append(failed.value.code())
    return codes


async def test_grpc_calls_in_the_list_and_their_detail(make_engine: EngineFactory) -> None:
    engine = await make_engine(PROFILE)
    bound = engine.services["pinger"].bound
    assert bound is not None
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=(110, 32)) as pilot:
        await settled(pilot)
        await pilot.press("x")
        traffic = app.main.query_one(TrafficList)
        codes = await asyncio.to_thread(_calls, bound[1])
        assert codes == [grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE]
        await until(pilot, lambda: len(traffic.rows) == 2, "two calls in the list")
        cells = [exchange_cells(row) for row in traffic.rows]
        assert [(c[3][0], c[4][0], c[5][0]) for c in cells] == [
            ("gRPC", "/demo.ping.Pinger/Ping", "OK"),
            ("gRPC", "/demo.ping.Pinger/Watch", "UNAVAILABLE"),
        ]
        assert cells[0][5][1] == "green" and cells[1][5][1] == "red"
        traffic.cursor = 1  # Watch
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        await until(pilot, lambda: "request_headers" in detail.exchange, "the full record")
        await pilot.pause()
        sections = {s.border_title: text_of(s) for s in detail.query(".detail-section")}
        assert "UNAVAILABLE (14)" in sections["gRPC"]
        assert "the mock does not stream" in sections["gRPC"]
        await pilot.press("escape")
        traffic.cursor = 0  # Ping
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        await until(pilot, lambda: "request_headers" in detail.exchange, "the full record")
        await pilot.pause()
        sections = {s.border_title: text_of(s) for s in detail.query(".detail-section")}
        assert "OK (0)" in sections["gRPC"] and "1 sent, 1 received" in sections["gRPC"]
        request = next(v for k, v in sections.items() if k and k.startswith("→ Request"))
        response = next(v for k, v in sections.items() if k and k.startswith("← Response"))
        assert '"hi"' in request and '"pong"' in response


async def test_a_grpc_fault_from_the_form_and_grpcurl_from_the_detail(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(PROFILE)
    bound = engine.services["pinger"].bound
    assert bound is not None
    app = make_app(engine, poll_status=False)
    async with app.run_test(size=(110, 40)) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults screen")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FaultForm), "the form")
        form = app.screen
        form.query_one("#form-kind", Select).value = "abort"
        await pilot.pause()
        form.query_one("#field-abort-grpc_status", Input).focus()
        await pilot.press(*"RESOURCE_EXHAUSTED")
        form.query_one("#field-abort-grpc_message", Input).focus()
        await pilot.press(*"slow down")
        form.query_one("#field-path", Input).focus()
        await pilot.press(*"/demo.ping.Pinger/Ping")
        form.query_one("#field-times", Input).focus()
        await pilot.press("1", "enter")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the form to close")
        fault = engine.services["pinger"].faults.get("abort")
        assert fault is not None

        def ping() -> tuple[grpc.StatusCode, str]:
            with grpc.insecure_channel(f"127.0.0.1:{bound[1]}") as channel:
                try:
                    channel.unary_unary("/demo.ping.Pinger/Ping")(PING, timeout=10)
                except grpc.RpcError as error:
                    return error.code(), error.details()
            return grpc.StatusCode.OK, ""

        assert await asyncio.to_thread(ping) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        assert (await asyncio.to_thread(ping))[0] == grpc.StatusCode.OK  # times: 1
        await pilot.press("escape", "x")
        traffic = app.main.query_one(TrafficList)
        await until(pilot, lambda: len(traffic.rows) == 2, "two calls in the list")
        cells = [exchange_cells(row) for row in traffic.rows]
        assert [c[5][0] for c in cells] == ["RESOURCE_EXHAUSTED", "OK"]
        assert cells[0][4][0].startswith("⚡")  # a fault fired on it
        traffic.cursor = 1
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExchangeScreen), "the detail")
        assert app.screen.check_action("replay", ()) is True  # gRPC unary calls replay
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), "the export screen")
        area = app.screen.query_one("#export-curl", TextArea)
        await until(pilot, lambda: area.text.startswith("grpcurl "), "the grpcurl command")
        assert "demo.ping.Pinger/Ping" in area.text and '"text":"hi"' in area.text.replace(" ", "")
