"""FeatureActions: the app's handlers for the faults panel, target detail, recording, the
traffic filter and the exchange actions. A mixin of `DevambApp`, kept apart from the app's core.

Each handler turns a request from a screen into engine calls through the app's gateway; results
go back down as screens pushed or attributes set. The messages the app core also needs
(`FaultsChanged`, `TrafficPending`) are handled there, which calls `show_faults_on_screens()` and
`refresh_filter_soon()` here: Textual runs a handler of every class in the MRO, so a second
`on_faults_changed` here would run as well, not instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devamb.control.protocol import ExchangeSummary, Status
from ui.gateway import EngineCallFailed, EngineGateway
from ui.messages import OpenFaults, OpenTargetDetail, ToggleRecording, TrafficCleared
from ui.screens.exchange_actions import ExchangeScreen
from ui.screens.faults import FaultsScreen
from ui.screens.target_detail import TargetDetail
from ui.widgets.filter_bar import FilterBar

if TYPE_CHECKING:
    from ui.app import DevambApp

FILTER_LIMIT = 5000  # exchanges asked for when a filter is applied
FILTER_REFRESH = 0.5  # seconds: while a filter is on, new traffic re-asks the engine this often


class FeatureActions:
    """Mixed into DevambApp (which provides gateway, status, main, notify, run_worker...)."""

    gateway: EngineGateway
    status: Status | None
    traffic_filter: str = ""
    _filter_refresh_due = False

    # -- faults --------------------------------------------------------------------------------

    def on_open_faults(self: DevambApp, message: OpenFaults) -> None:
        service = self.service(message.service)
        if service is not None:
            self.push_screen(FaultsScreen(self.gateway, service["name"], service["protocol"]))

    def show_faults_on_screens(self: DevambApp, service: str, faults: list[dict]) -> None:
        """A service's faults changed: the open faults panels of that service show them."""
        for screen in self.screen_stack:
            if isinstance(screen, FaultsScreen) and screen.service == service:
                screen.show_faults(faults)

    # -- target detail and recording -----------------------------------------------------------

    def on_open_target_detail(self: DevambApp, message: OpenTargetDetail) -> None:
        service = self.service(message.service)
        if service is not None:
            target = message.target or service["target"]
            self.push_screen(TargetDetail(self.gateway, service, target))

    def recording(self: DevambApp) -> set[str]:
        if self.status is None:
            return set()
        return {str(r.get("service")) for r in self.status.get("recordings", [])}

    def on_toggle_recording(self: DevambApp, message: ToggleRecording) -> None:
        self.run_worker(self._toggle_recording(message.service), group="record")

    async def _toggle_recording(self: DevambApp, service: str) -> None:
        try:
            if service in self.recording():
                written = await self.gateway.call(lambda engine: engine.stop_recording(service))
                for done in written:
                    self.notify(
                        f"{done.get('recorded', 0)} exchanges of {service} → {done.get('file')}",
                        title="Recording written",
                    )
            else:
                started = await self.gateway.call(lambda engine: engine.start_recording(service))
                self.notify(f"{service} → {started.get('to')} (R again to stop and write)",
                            title="Recording")  # fmt: skip
        except EngineCallFailed as failure:
            self.notify(failure.text, title="Recording failed", severity="error")
            return
        await self._refresh_status()

    # -- traffic: the engine-side filter, clearing, exchange actions ---------------------------

    def on_filter_bar_applied(self: DevambApp, message: FilterBar.Applied) -> None:
        self.run_worker(
            self._apply_filter(message.expression, message.control),
            group="traffic-filter",
            exclusive=True,
        )

    async def _apply_filter(self: DevambApp, expression: str, bar: FilterBar | None) -> None:
        """Ask the engine for the exchanges that match; show them, or the engine's error."""
        from ui.widgets.traffic_pane import TrafficPane

        rows: list[ExchangeSummary] | None = None
        if expression:
            try:
                rows = await self.gateway.call(
                    lambda engine: engine.exchanges(FILTER_LIMIT, expression)
                )
            except EngineCallFailed as failure:
                if bar is not None:
                    bar.show_error(failure.text)
                return
        self.traffic_filter = expression
        main = self.live_main
        if main is None:
            return
        pane = main.query_one(TrafficPane)
        pane.show_matching(rows)
        if bar is not None:
            bar.show_ok(expression, len(rows) if rows is not None else len(self.traffic))

    def refresh_filter_soon(self: DevambApp) -> None:
        """New traffic came: while a filter is on, ask the engine again (at most every 0.5 s)."""
        if self.traffic_filter and not self._filter_refresh_due:
            self._filter_refresh_due = True
            self.set_timer(FILTER_REFRESH, self._refresh_filter)

    def _refresh_filter(self: DevambApp) -> None:
        self._filter_refresh_due = False
        if self.traffic_filter:
            self.run_worker(
                self._apply_filter(self.traffic_filter, None),
                group="traffic-filter",
                exclusive=True,
            )

    def on_traffic_cleared(self: DevambApp, message: TrafficCleared) -> None:
        async def clear() -> None:
            try:
                await self.gateway.call(lambda engine: engine.clear_exchanges())
            except EngineCallFailed as failure:
                self.notify(failure.text, title="Clear failed", severity="error")

        self.run_worker(clear(), group="traffic-clear")

    def exchange_screen(self: DevambApp, exchange: ExchangeSummary) -> ExchangeScreen:
        service = self.service(exchange["service"])
        targets: list[dict[str, Any]] = [dict(t) for t in service["targets"]] if service else []
        return ExchangeScreen(
            exchange,
            self.gateway,
            load=self._exchange_detail,
            targets=targets,
            filter=self.traffic_filter or None,
        )
