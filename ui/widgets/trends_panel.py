"""TrendsPanel: a request-rate and a latency sparkline for every service."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static

from .. import display
from ..model.trends import Trends


class ServiceTrend(Horizontal):
    """One line: name, rate sparkline and value, latency sparkline and value."""

    def __init__(self, service: str) -> None:
        super().__init__(classes="service-trend")
        self.service = service

    def compose(self) -> ComposeResult:
        yield Label(self.service, classes="trend-name")
        yield Sparkline([], classes="trend-rate")
        yield Static("0/s", classes="trend-value trend-rate-value")
        yield Sparkline([], classes="trend-latency")
        yield Static("—", classes="trend-value trend-latency-value")

    def show(self, trends: Trends) -> None:
        rate, latency = trends.rate(self.service), trends.latency(self.service)
        self.query_one(".trend-rate", Sparkline).data = trends.window(rate)
        self.query_one(".trend-latency", Sparkline).data = trends.window(latency)
        # fixed-width cells: no relayout twice a second
        self.query_one(".trend-rate-value", Static).update(
            f"{display.rate(rate[-1]) if rate else '0'}/s", layout=False
        )
        self.query_one(".trend-latency-value", Static).update(
            display.duration(latency[-1]) if latency and latency[-1] else "—", layout=False
        )


class TrendsPanel(VerticalScroll, can_focus=False):
    """Rate (requests/s) and p99 latency over the last 30 seconds, one line per service."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._services: list[str] = []
        self.border_title = "Last 30 s · req/s · p99 latency"

    async def set_services(self, services: list[str]) -> None:
        if services == self._services:
            return
        self._services = list(services)
        await self.remove_children()
        await self.mount_all([ServiceTrend(name) for name in services])

    def show(self, trends: Trends) -> None:
        for row in self.query(ServiceTrend):
            row.show(trends)
