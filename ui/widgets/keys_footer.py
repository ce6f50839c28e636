"""KeysFooter: Textual's footer with `? Help` first, so it is in view at any width.

The footer lists the focused widget's keys, then the screen's, then the app's: at 80 columns the
line is full before the app's `? Help` and it is cut off. Docking it right would cover the
command palette's key (docked widgets on one edge overlap), so it goes first instead.
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
