"""FeatureActions: the app's handlers for the faults panel, target detail, recording, the
traffic filter and the exchange actions. A mixin of `DevambApp`, kept apart from the app's core.

Each handler turns a request from a screen into engine calls through the app's gateway; results
go back down as screens pushed or attributes set. The messages the app core also needs
(`FaultsChanged`, `TrafficPending`) are handled there, which calls `show_faults_on_screens()` and
`refresh_filter_soon()` here: Textual runs a handler of every class in the MRO, so a second
`on_faults_changed` here would run as well, not instead.

What the handlers need from the app is spelled out by `FeatureHost`, the type of `self` in every
method here, so that mypy checks their bodies; ui/app.py has mypy check that `DevambApp` is a
`FeatureHost` (`_features_host`). Add to the protocol what a new handler uses of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from textual.notifications import SeverityLevel

from devamb.control.protocol import ExchangeSummary, ServiceStatus, Status

from .gateway import EngineCallFailed, EngineGateway
from .messages import (
    OpenFaults,
    OpenSlowStatements,
    OpenTargetDetail,
    ToggleRecording,
    TrafficCleared,
)
from .screens.exchange_actions import ExchangeScreen
from .screens.faults import FaultsScreen
from .screens.slow import SlowStatements
from .screens.target_detail import TargetDetail
from .widgets.filter_bar import FilterBar

if TYPE_CHECKING:
    from textual.screen import Screen

    from .model.traffic import TrafficStore
    from .screens.main import MainScreen

FILTER_LIMIT = 5000  # exchanges asked for when a filter is applied
FILTER_REFRESH = 0.5  # seconds: while a filter is on, new traffic re-asks the engine this often


class FeatureHost(Protocol):
    """What FeatureActions uses of the app it is mixed into: `DevambApp`, a Textual `App`."""

    gateway: EngineGateway
    status: Status | None
    traffic: TrafficStore
    traffic_filter: str
    _filter_refresh_due: bool

    @property
    def live_main(self) -> MainScreen | None: ...

    @property
    def screen_stack(self) -> list[Screen[Any]]: ...

    def service(self, name: str) -> ServiceStatus | None: ...

    async def _refresh_status(self) -> None: ...

    async def _exchange_detail(self, exchange_id: int) -> dict[str, Any] | None: ...

    # Textual's App methods, as far as the handlers use them
    def push_screen(self, screen: Screen[Any]) -> object: ...

    def run_worker(
        self,
        work: Coroutine[Any, Any, None],
        *,
        group: str = "default",
        exclusive: bool = False,
    ) -> object: ...

    def set_timer(self, delay: float, callback: Callable[[], object]) -> object: ...

    def notify(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information"
    ) -> None: ...

    # FeatureActions' own handlers that call one another
    def recording(self) -> set[str]: ...

    async def _toggle_recording(self, service: str) -> None: ...

    async def _apply_filter(self, expression: str, bar: FilterBar | None) -> None: ...

    def _refresh_filter(self) -> None: ...


class FeatureActions:
    """Mixed into DevambApp (which provides gateway, status, main, notify, run_worker...)."""

    gateway: EngineGateway
    status: Status | None
    traffic_filter: str = ""
    _filter_refresh_due = False

    # -- faults --------------------------------------------------------------------------------

    def on_open_faults(self: FeatureHost, message: OpenFaults) -> None:
        service = self.service(message.service)
        if service is not None:
            self.push_screen(FaultsScreen(self.gateway, service["name"], service["protocol"]))

    def show_faults_on_screens(
        self: FeatureHost, service: str, faults: list[dict[str, Any]]
    ) -> None:
        """A service's faults changed: the open faults panels of that service show them."""
        for screen in self.screen_stack:
            if isinstance(screen, FaultsScreen) and screen.service == service:
                screen.show_faults(faults)

    # -- target detail and recording -----------------------------------------------------------

    def on_open_target_detail(self: FeatureHost, message: OpenTargetDetail) -> None:
        service = self.service(message.service)
        if service is not None:
            target = message.target or service["target"]
            self.push_screen(TargetDetail(self.gateway, service, target))

    def on_open_slow_statements(self: FeatureHost, message: OpenSlowStatements) -> None:
        if self.service(message.service) is not None:
            self.push_screen(SlowStatements(self.gateway, message.service))

    def recording(self: FeatureHost) -> set[str]:
        if self.status is None:
            return set()
        return {str(r.get("service")) for r in self.status.get("recordings", [])}

    def on_toggle_recording(self: FeatureHost, message: ToggleRecording) -> None:
        self.run_worker(self._toggle_recording(message.service), group="record")

    async def _toggle_recording(self: FeatureHost, service: str) -> None:
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

    def on_filter_bar_applied(self: FeatureHost, message: FilterBar.Applied) -> None:
        self.run_worker(
            self._apply_filter(message.expression, message.control),
            group="traffic-filter",
            exclusive=True,
        )

    async def _apply_filter(self: FeatureHost, expression: str, bar: FilterBar | None) -> None:
        """Ask the engine for the exchanges that match; show them, or the engine's error."""
        from .widgets.traffic_pane import TrafficPane

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

    def refresh_filter_soon(self: FeatureHost) -> None:
        """New traffic came: while a filter is on, ask the engine again (at most every 0.5 s)."""
        if self.traffic_filter and not self._filter_refresh_due:
            self._filter_refresh_due = True
            self.set_timer(FILTER_REFRESH, self._refresh_filter)

    def _refresh_filter(self: FeatureHost) -> None:
        self._filter_refresh_due = False
        if self.traffic_filter:
            self.run_worker(
                self._apply_filter(self.traffic_filter, None),
                group="traffic-filter",
                exclusive=True,
            )

    def on_traffic_cleared(self: FeatureHost, message: TrafficCleared) -> None:
        async def clear() -> None:
            try:
                await self.gateway.call(lambda engine: engine.clear_exchanges())
            except EngineCallFailed as failure:
                self.notify(failure.text, title="Clear failed", severity="error")

        self.run_worker(clear(), group="traffic-clear")

    def exchange_screen(self: FeatureHost, exchange: ExchangeSummary) -> ExchangeScreen:
        service = self.service(exchange["service"])
        targets: list[dict[str, Any]] = [dict(t) for t in service["targets"]] if service else []
        return ExchangeScreen(
            exchange,
            self.gateway,
            load=self._exchange_detail,
            targets=targets,
            filter=self.traffic_filter or None,
        )
