"""MainScreen: the dashboard (services, trends, events) and the traffic view, as two tabs."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, TabbedContent, TabPane

from devamb.control.protocol import ServiceStats, ServiceStatus, Status

from ..messages import OpenFaults, OpenSlowStatements, OpenTargetDetail, ToggleRecording
from ..model.traffic import TrafficStore
from ..model.trends import Trends
from ..widgets.bastions_panel import BastionsPanel
from ..widgets.events_log import EventsLog
from ..widgets.keys_footer import KeysFooter
from ..widgets.services_table import ServicesTable
from ..widgets.traffic_list import TrafficList
from ..widgets.traffic_pane import TrafficPane
from ..widgets.trends_panel import TrendsPanel


class MainScreen(Screen[None]):
    """The app's home. The app sets data on it; it posts what the user asks for."""

    BINDINGS = [
        Binding("t", "pick_target", "Switch"),
        Binding("d", "show_tab('dashboard')", "Dashboard"),
        Binding("x", "show_tab('traffic')", "Traffic"),
        Binding("f", "service_faults", "Faults"),
        Binding("i", "target_detail", "Target"),
        Binding("R", "record", "Record"),
        Binding("s", "slow_statements", "Slowest", show=False),  # in the help: the footer is full
    ]

    class PickTarget(Message):
        """Open the target picker for a service."""

        def __init__(self, service: str) -> None:
            super().__init__()
            self.service = service

    def __init__(self, traffic: TrafficStore) -> None:
        super().__init__()
        self.traffic = traffic

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="dashboard", id="tabs"):
            with TabPane("Dashboard", id="dashboard"):
                yield ServicesTable(id="services")
                yield TrendsPanel(id="trends")
                yield BastionsPanel(id="bastions")  # shown when the profile has bastions
                yield EventsLog(id="events")
            with TabPane("Traffic", id="traffic"):
                yield TrafficPane(self.traffic, id="traffic-pane")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one(ServicesTable).focus()

    # -- data set by the app -------------------------------------------------------------------

    async def show_status(self, status: Status) -> None:
        services: list[ServiceStatus] = status["services"]
        names = [service["name"] for service in services]
        table = self.query_one(ServicesTable)
        table.recording = {str(r.get("service")) for r in status.get("recordings", [])}
        table.show(services)
        self.query_one(BastionsPanel).show(list(status.get("bastions") or []))
        await self.query_one(TrendsPanel).set_services(names)
        self.query_one(TrafficPane).set_services(names)

    def show_stats(self, stats: dict[str, ServiceStats], trends: Trends) -> None:
        tables = self.query(ServicesTable)
        if not tables:  # news before the screen's widgets are composed, or after they went
            return
        tables.first().show_stats(stats)
        self.query_one(TrendsPanel).show(trends)

    def show_traffic(self) -> None:
        self.query_one(TrafficPane).refresh_rows()

    def log_event(self, level: str, text: str, when: float | None = None) -> None:
        clock = getattr(self.app, "clock", None)
        if when is None and clock is not None:
            when = clock()
        self.query_one(EventsLog).add(level, text, when)

    # -- user actions --------------------------------------------------------------------------

    @property
    def selected_service(self) -> str | None:
        return self.query_one(ServicesTable).selected_service

    def action_pick_target(self) -> None:
        service = self.selected_service
        if service is not None:
            self.post_message(self.PickTarget(service))

    def action_service_faults(self) -> None:
        if self.selected_service is not None:
            self.post_message(OpenFaults(self.selected_service))

    def action_target_detail(self) -> None:
        if self.selected_service is not None:
            self.post_message(OpenTargetDetail(self.selected_service))

    def action_slow_statements(self) -> None:
        if self.selected_service is not None:
            self.post_message(OpenSlowStatements(self.selected_service))

    def action_record(self) -> None:
        if self.selected_service is not None:
            self.post_message(ToggleRecording(self.selected_service))

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        # draw and focus now, so that the very next key already reaches the right widget
        if tab == "traffic":
            self.query_one(TrafficPane).catch_up()
            self.query_one(TrafficList).focus()
        else:
            self.query_one(ServicesTable).focus()

    @on(DataTable.RowSelected, "#services")
    def _service_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_pick_target()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Focus the main widget of the tab the user opened.

        Focus itself activates the tab that holds the focused widget, so a stale activation
        (another one is already queued) must not move focus, or two tabs would keep flipping.
        """
        tabs = self.query_one(TabbedContent)
        if event.pane.id != tabs.active:
            return
        focused = self.focused
        if focused is not None and event.pane in focused.ancestors:
            return
        if event.pane.id == "traffic":
            self.query_one(TrafficList).focus()
        else:
            self.query_one(ServicesTable).focus()
