"""TrafficPane: the traffic list with its filter, follow/pause state and header line."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Select, Static

from devamb.control.protocol import ExchangeSummary

from ..messages import TrafficCleared
from ..model.traffic import TrafficStore
from . import traffic_columns
from .filter_bar import FilterBar
from .traffic_list import TrafficList

ALL = "__all__"
REDRAW_EVERY = 0.1  # seconds: a followed list scrolls at most ten times a second


class TrafficHeader(Widget):
    """The column titles, laid out like the list's lines."""

    def render(self) -> Text:
        return traffic_columns.header(self.size.width)


class TrafficPane(Vertical):
    """Shows a `TrafficStore`: following new exchanges, or paused on what was on screen."""

    BINDINGS = [
        Binding("space", "toggle_follow", "Pause"),
        Binding("f", "next_filter", "Filter"),
        Binding("c", "clear", "Clear", show=False),
        Binding("slash", "open_filter", "Filter expr"),
    ]

    following: reactive[bool] = reactive(True, init=False)
    service: reactive[str | None] = reactive(None, init=False)

    class FollowChanged(Message):
        def __init__(self, following: bool) -> None:
            super().__init__()
            self.following = following

    def __init__(self, store: TrafficStore, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self._services: list[str] = []
        self._seen_serial = 0
        self._new_while_paused = 0
        self._stale = False
        self._drawn_at = 0.0
        self._redraw: Timer | None = None
        self.matching: list[ExchangeSummary] | None = None  # the engine's answer to a filter

    def compose(self) -> ComposeResult:
        with Horizontal(id="traffic-toolbar"):
            yield Select[str](
                [("All services", ALL)],
                value=ALL,
                allow_blank=False,
                id="traffic-filter",
                compact=True,
            )
            yield Static("", id="traffic-state")
        yield FilterBar(id="filter-bar")
        yield TrafficHeader(id="traffic-header")
        yield TrafficList(id="traffic-list")

    @property
    def traffic_list(self) -> TrafficList:
        return self.query_one(TrafficList)

    def on_mount(self) -> None:
        self._show_state()

    def set_services(self, services: list[str]) -> None:
        if services == self._services:
            return
        self._services = list(services)
        select = self.query_one("#traffic-filter", Select)
        select.set_options([("All services", ALL), *((name, name) for name in services)])
        select.value = self.service if self.service in services else ALL

    def refresh_rows(self) -> None:
        """Take what is new in the store: show it when following, count it when paused.

        While the pane is hidden (another tab is open) nothing is drawn: laying out a hidden
        list costs Textual a full map of the screen; the pane catches up when it is shown.
        While it is shown, it redraws at most every REDRAW_EVERY seconds, however fast
        exchanges come.
        """
        arrived = self.store.serial - self._seen_serial
        self._seen_serial = self.store.serial
        if not self.following:
            if arrived:
                self._new_while_paused += arrived
                self._show_state()
        elif not self._shown():
            self._stale = True
        elif self._redraw is None:
            wait = self._drawn_at + REDRAW_EVERY - time.monotonic()
            if wait > 0:  # drew a moment ago: draw once more when the interval is over
                self._redraw = self.set_timer(wait, self._draw)
            else:
                self._draw()

    def _draw(self) -> None:
        self._redraw = None
        self._stale = False
        self._drawn_at = time.monotonic()
        if self.following:
            self.traffic_list.set_rows(self._rows(), to_end=True)
        self._show_state()

    def _shown(self) -> bool:
        return all(node.display for node in self.ancestors_with_self)

    def catch_up(self) -> None:
        """Draw what arrived while the pane was hidden (its tab is being opened)."""
        if self._stale and self.following:
            self._draw()

    def on_show(self) -> None:
        self.catch_up()

    def _show_state(self) -> None:
        label = self.query_one("#traffic-state", Static)
        shown = len(self.traffic_list.rows)
        if self.following:
            state = Text.assemble(("● following", "bold green"), f"  {shown} shown")
        else:
            state = Text.assemble(
                ("❚❚ paused", "bold yellow"),
                f"  {self._new_while_paused} new · space to follow",
            )
        label.update(state, layout=False)  # fixed size: no relayout at every batch

    def watch_following(self, following: bool) -> None:
        if following:
            self._new_while_paused = 0
            self.traffic_list.set_rows(self._rows(), to_end=True)
        self._show_state()
        self.post_message(self.FollowChanged(following))

    def watch_service(self, service: str | None) -> None:
        self.traffic_list.set_rows(self._rows(), to_end=self.following)
        self._show_state()

    def action_toggle_follow(self) -> None:
        self.following = not self.following

    def action_next_filter(self) -> None:
        choices: list[str | None] = [None, *self._services]
        index = choices.index(self.service) if self.service in choices else 0
        self.service = choices[(index + 1) % len(choices)]
        self.query_one("#traffic-filter", Select).value = self.service or ALL

    def action_clear(self) -> None:
        self.store.clear()
        self._new_while_paused = 0
        self.traffic_list.set_rows([], to_end=True)
        self._show_state()
        if self.matching is not None:
            self.matching = []
        self.post_message(TrafficCleared())

    def _rows(self) -> list[ExchangeSummary]:
        """What the list shows: the store, or the engine's matches while a filter is on."""
        if self.matching is None:
            return self.store.select(self.service)
        return [e for e in self.matching if self.service in (None, e["service"])]

    def show_matching(self, rows: list[ExchangeSummary] | None) -> None:
        """The engine's exchanges matching the filter expression (None: no filter)."""
        self.matching = rows
        self.traffic_list.set_rows(self._rows(), to_end=self.following)
        self._show_state()

    def action_open_filter(self) -> None:
        self.query_one(FilterBar).open()

    @on(FilterBar.Closed)
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        self.traffic_list.focus()

    @on(Select.Changed, "#traffic-filter")
    def _filter_changed(self, event: Select.Changed) -> None:
        value = event.value
        self.service = None if value in (ALL, Select.NULL) else str(value)

    @on(TrafficList.CursorMoved)
    def _cursor_moved(self, event: TrafficList.CursorMoved) -> None:
        if self.following and not event.at_end:
            self.following = False
        self._show_state()
