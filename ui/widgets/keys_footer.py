"""KeysFooter: Textual's footer with `? Help` first, so it is in view at any width.

The footer lists the focused widget's keys, then the screen's, then the app's: at 80 columns the
line is full before the app's `? Help` and it is cut off. Docking it right would cover the
command palette's key (docked widgets on one edge overlap), so it goes first instead.

The command palette's key is docked right, over whatever keys run that far: a key that does not
fit before it is hidden whole (the help lists every key), never drawn half under it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

HELP_ACTION = "help"


class KeysFooter(Footer):
    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            for _, binding, enabled, tooltip in self.screen.active_bindings.values():
                if binding.action == HELP_ACTION and binding.show:
                    yield FooterKey(
                        binding.key,
                        self.app.get_key_display(binding),
                        binding.description,
                        binding.action,
                        disabled=not enabled,
                        tooltip=tooltip,
                    ).data_bind(compact=Footer.compact)
                    break
        for widget in super().compose():  # the rest as Textual lays them out
            if not (isinstance(widget, FooterKey) and widget.action == HELP_ACTION):
                yield widget

    async def recompose(self) -> None:
        await super().recompose()
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Hide the keys that would run under the command palette's key (or past the edge)."""
        palette = [w for w in self.children if w.has_class("-command-palette")]
        limit = palette[0].region.x if palette and palette[0].display else self.region.right
        for widget in self.children:
            if widget in palette:
                continue
            # a hidden key keeps its place: the keys before it do not move
            widget.visible = widget.region.right <= limit
