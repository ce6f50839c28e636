"""ExchangeScreen: the exchange detail plus what can be done with it — replay (`r`), replay to
another target and diff (`d`), export (`e`: curl of this one — grpcurl of a gRPC call — and a
HAR of the current filter).

It subclasses `ExchangeDetail` (which only shows) and talks to the engine through the app's
`EngineGateway`; replay and export may take the gateway's longer (`slow`) timeout.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from devamb.control.protocol import ExchangeSummary

from ..gateway import EngineCallFailed, EngineGateway
from .choose_target import ChooseTarget
from .diff import DiffScreen
from .exchange_detail import ExchangeDetail, Loader

DEFAULT_HAR = "devamb-export.har"
REPLAYABLE = ("http", "http2", "grpc")  # protocols whose exchanges are requests


class ExchangeScreen(ExchangeDetail):
    BINDINGS = [
        Binding("r", "replay", "Replay"),
        Binding("d", "replay_diff", "Replay to… + diff"),
        Binding("e", "export", "Export"),
    ]

    def __init__(
        self,
        exchange: ExchangeSummary,
        gateway: EngineGateway,
        *,
        load: Loader | None = None,
        targets: list[dict[str, Any]] | None = None,
        filter: str | None = None,
    ) -> None:
        super().__init__(exchange, load=load)
        self.gateway = gateway
        self.targets = targets or []
        self.filter = filter

    @property
    def exchange_id(self) -> int:
        return int(self.exchange["id"])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """TCP connections cannot be replayed: their keys are not offered."""
        if action in ("replay", "replay_diff"):
            protocol: str = self.exchange.get("protocol", "http")
            return protocol in REPLAYABLE
        return True

    def action_replay(self) -> None:
        self.run_worker(self._replay(None, diff=False), group="replay")

    def action_replay_diff(self) -> None:
        target = str(self.exchange.get("target", ""))
        others = [t for t in self.targets if t["name"] != target]
        if not others:
            self.notify("this service has no other target to compare with", severity="warning")
            return
        title = f"Replay #{self.exchange_id} to which target and compare with {target}?"

        def chosen(choice: str | None) -> None:
            if choice is not None:
                self.run_worker(self._replay(choice, diff=True), group="replay")

        self.app.push_screen(ChooseTarget(title, self.targets, exclude=target), chosen)

    async def _replay(self, target: str | None, diff: bool) -> None:
        where = target or str(self.exchange.get("target"))
        self.notify(f"replaying #{self.exchange_id} to {where}…", timeout=2)
        exchange_id = self.exchange_id
        try:
            result = await self.gateway.call(
                lambda engine: engine.replay(exchange_id, target, diff=diff), slow=True
            )
        except EngineCallFailed as failure:
            self.notify(failure.text, title="Replay failed", severity="error")
            return
        copy = result.get("exchange", {})
        status = copy.get("status")
        self.notify(
            f"#{self.exchange_id} replayed as #{copy.get('id')} on {copy.get('target')}: "
            f"{status if status is not None else copy.get('error') or 'no response'}",
            title="Replayed",
        )
        if diff:
            await self.app.push_screen(
                DiffScreen(dict(self.exchange), dict(copy), list(result.get("diff", [])))
            )

    def action_export(self) -> None:
        grpc = "grpc" in (self.exchange.get("notes") or {})
        self.app.push_screen(ExportScreen(self.gateway, self.exchange_id, self.filter, grpc))


class ExportScreen(ModalScreen[None]):
    """curl of one exchange (grpcurl of a gRPC call; select and copy), or a HAR file of the
    current filter."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("ctrl+y", "copy", "Copy command"),
    ]

    def __init__(
        self, gateway: EngineGateway, exchange_id: int, filter: str | None, grpc: bool = False
    ) -> None:
        super().__init__()
        self.gateway = gateway
        self.exchange_id = exchange_id
        self.filter = filter
        self.tool = "grpcurl" if grpc else "curl"

    def compose(self) -> ComposeResult:
        scope = f"exchanges matching {self.filter!r}" if self.filter else "all recorded exchanges"
        with Vertical(id="export"):
            yield Label(Text(f"{self.tool} for exchange #{self.exchange_id}", style="bold"))
            yield TextArea("loading…", read_only=True, id="export-curl", soft_wrap=True)
            yield Label(Text.assemble(("HAR file", "bold"), f" of {scope}: path, then Enter"))
            yield Input(value=DEFAULT_HAR, id="export-har-path", compact=True)
            yield Static("", id="export-message")
            yield Label(f"ctrl+y copy {self.tool} · Enter write HAR · Esc close",
                        classes="picker-help")

    def on_mount(self) -> None:
        self.run_worker(self._load_curl(), group="curl")
        self.query_one("#export-har-path").focus()

    async def _load_curl(self) -> None:
        area = self.query_one("#export-curl", TextArea)
        exchange_id = self.exchange_id
        try:
            curl = await self.gateway.call(
                lambda engine: engine.export_grpcurl(exchange_id) if self.tool == "grpcurl"
                else engine.export_curl(exchange_id),
                slow=True,
            )
        except EngineCallFailed as failure:
            area.text = f"# {failure.text}"
            return
        area.text = curl

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.query_one("#export-curl", TextArea).text)
        self.say(f"{self.tool} copied to the clipboard")

    def say(self, text: str, error: bool = False) -> None:
        style = "bold red" if error else "green"
        self.query_one("#export-message", Static).update(Text(text, style=style))

    @on(Input.Submitted, "#export-har-path")
    def _write_har(self, event: Input.Submitted) -> None:
        event.stop()
        self.run_worker(self._export_har(event.value.strip() or DEFAULT_HAR), group="har")

    async def _export_har(self, path_text: str) -> None:
        try:
            har = await self.gateway.call(lambda engine: engine.export_har(self.filter), slow=True)
        except EngineCallFailed as failure:
            self.say(failure.text, error=True)
            return
        path = Path(path_text).expanduser()
        text = json.dumps(har, indent=2, ensure_ascii=False)
        try:
            await asyncio.to_thread(path.write_text, text, "utf-8")
        except OSError as error:  # the file, not the engine: say which file and why
            self.say(f"could not write {path}: {error.strerror or error}", error=True)
            return
        entries = len(har.get("log", {}).get("entries", []))
        self.say(f"wrote {entries} exchanges to {path.resolve()}")
        self.notify(f"HAR written: {path.resolve()}", title="Export")
