"""The exchange detail lists a WebSocket's messages one by one."""

from __future__ import annotations

from textual.widgets import Static

from tests.ui.fake_control import T0, FakeControl, exchange
from ui.app import make_app
from ui.screens.exchange_detail import ExchangeDetail


def message(direction: str, kind: str, opcode: int, data: str, **extra: object) -> dict:
    return {"direction": direction, "type": kind, "opcode": opcode, "size": len(data),
            "time": T0, "truncated": False, "data": data, "encoding": "utf-8", **extra}


async def test_the_detail_lists_each_message_with_its_direction_and_type() -> None:
    ws = exchange(
        9, path="/ws", status=101,
        messages=[message("upstream", "text", 1, "hello"),
                  message("downstream", "text", 1, "echo:hello"),
                  message("upstream", "binary", 2, "AQID", encoding="base64"),
                  message("downstream", "close", 8, "bye", code=1000)],
        messages_dropped=2,
    )
    app = make_app(FakeControl(history=[ws]), poll_status=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.connected.wait()
        await pilot.press("x", "enter")
        detail = app.screen
        assert isinstance(detail, ExchangeDetail)
        sections = {s.border_title: s for s in detail.query(Static) if s.border_title}
        title = "WebSocket messages (4, 2 more not kept)"
        assert title in sections and "More" not in sections
        table = sections[title].content
        rows = [[str(cell) for cell in column.cells] for column in table.columns]  # type: ignore[attr-defined]
        assert rows[1] == ["→", "←", "→", "←"]
        assert rows[2] == ["text", "text", "binary", "close"]
        assert rows[4] == ["hello", "echo:hello", "(base64) AQID", "1000 bye"]
