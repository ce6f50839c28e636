"""TrafficList: a virtual list of exchanges that draws only the lines on screen.

It holds a plain list of exchanges and renders line by line (toolong's approach), so replacing
its rows with a fresh batch is cheap however long the list is, and thousands of exchanges a second
cost no more than the lines a terminal can show.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from devamb.control.protocol import ExchangeSummary

from . import traffic_columns


class TrafficList(ScrollView, can_focus=True):
    """Exchanges, oldest at the top; `cursor` is the highlighted line."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "open", "Detail"),
    ]
    COMPONENT_CLASSES = {"traffic-list--cursor"}

    cursor: reactive[int] = reactive(-1, always_update=True)

    class Opened(Message):
        """The user asked for the detail of one exchange."""

        def __init__(self, exchange: ExchangeSummary) -> None:
            super().__init__()
            self.exchange = exchange

    class CursorMoved(Message):
        """The user moved the cursor (the pane stops following when it moves up)."""

        def __init__(self, at_end: bool) -> None:
            super().__init__()
            self.at_end = at_end

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[ExchangeSummary] = []
        self._lines: LRUCache[tuple[int, float, int, bool], Strip] = LRUCache(1024)
        self._styles: tuple[Style, Style] | None = None

    @property
    def current(self) -> ExchangeSummary | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    def set_rows(self, rows: list[ExchangeSummary], *, to_end: bool) -> None:
        """Replace the rows; keep the cursor on the same exchange unless `to_end`."""
        keep = self.current
        self.rows = rows
        self._set_virtual_height(len(rows))
        if to_end or keep is None:
            self.cursor = len(rows) - 1
        else:
            self.cursor = next(
                (index for index, row in enumerate(rows) if row["id"] == keep["id"]),
                len(rows) - 1,
            )
        self.refresh()

    def _set_virtual_height(self, height: int) -> None:
        size, old = Size(self.size.width, height), self.virtual_size
        if size == old:
            return
        viewport = self.size.height
        if old.width == size.width and old.height > viewport and height > viewport:
            # The list grows while it already scrolls: the scrollbar stays, so only it needs an
            # update. Setting `virtual_size` would lay out the whole screen at every batch.
            self.set_reactive(TrafficList.virtual_size, size)
            self._scroll_update(size)
            return
        self.virtual_size = size

    def on_resize(self) -> None:
        self._lines.clear()
        self.virtual_size = Size(self.size.width, len(self.rows))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def watch_cursor(self, cursor: int) -> None:
        self._show_cursor()
        # the virtual size may grow with this very update: look again once it is laid out
        self.call_after_refresh(self._show_cursor)

    def _show_cursor(self) -> None:
        height = self.scrollable_content_region.height
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=max(0, self.cursor), animate=False, immediate=True)
        elif height and self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # the widget's styles, looked up once a frame rather than once a line
        self._styles = (self.rich_style, self.get_component_rich_style("traffic-list--cursor"))
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        base, cursor = self._styles or (self.rich_style, Style())
        if index >= len(self.rows) or width <= 0:
            return Strip.blank(width, base)
        exchange = self.rows[index]
        highlighted = index == self.cursor
        key = (exchange["id"], exchange["time"], width, highlighted)
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        if highlighted:
            base = base + cursor
        segments = [
            Segment(text, base + Style.parse(style) if style else base)
            for text, style in traffic_columns.fit(traffic_columns.exchange_cells(exchange), width)
        ]
        strip = Strip(segments, width)
        self._lines[key] = strip
        return strip

    def on_focus(self) -> None:
        self._lines.clear()  # the cursor line looks different with focus

    def on_blur(self) -> None:
        self._lines.clear()

    def _move(self, cursor: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(len(self.rows) - 1, cursor))
        self.post_message(self.CursorMoved(at_end=self.cursor == len(self.rows) - 1))

    def action_cursor_up(self) -> None:
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor - max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self._move(self.cursor + max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(len(self.rows) - 1)

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Opened(self.current))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < len(self.rows):
            self._move(index)
            if event.chain == 2:
                self.action_open()
