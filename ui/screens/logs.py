"""LogsScreen: a docker target's container logs, tailed in a worker until the screen closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Log

from ..gateway import EngineCallFailed, EngineGateway

TAIL = 200
MAX_LINES = 5000


class LogsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "close", "Back")]

    def __init__(self, gateway: EngineGateway, service: str, target: str) -> None:
        super().__init__()
        self.gateway = gateway
        self.service = service
        self.target = target

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(id="logs", max_lines=MAX_LINES, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Logs · {self.service} → {self.target}"
        self.query_one(Log).focus()
        self.run_worker(self._follow(), group="logs", exclusive=True)

    def action_close(self) -> None:
        self.stop_tail()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self.stop_tail()

    def stop_tail(self) -> None:
        """Stop following: the engine's log stream closes with the worker."""
        self.workers.cancel_group(self, "logs")

    async def _follow(self) -> None:
        log = self.query_one(Log)
        lines = self.gateway.follow(
            lambda engine: engine.container_logs(self.service, self.target, tail=TAIL)
        )
        try:
            async for line in lines:
                log.write_line(line.rstrip("\n"))
        except EngineCallFailed as failure:
            log.write_line(f"[devamb] {failure.text}")
            return
        log.write_line("[devamb] the log stream ended")
