"""Command-palette providers: "Switch <service> → <target>" for every pair."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .messages import SwitchRequested

if TYPE_CHECKING:
    from .app import DevambApp


class SwitchCommands(Provider):
    """Offers every service/target pair the engine knows, the current target marked."""

    def _pairs(self) -> list[tuple[str, str, str]]:
        app = cast("DevambApp", self.app)
        if app.status is None:
            return []
        pairs = []
        for service in app.status["services"]:
            for target in service["targets"]:
                help_text = f"{target['kind']} · {target['address']} · {target['state']}"
                if target["name"] == service["target"]:
                    help_text = "active now · " + help_text
                command = f"Switch {service['name']} → {target['name']}"
                pairs.append((command, help_text, f"{service['name']}\0{target['name']}"))
        return pairs

    def _request(self, pair: str) -> None:
        service, target = pair.split("\0")
        self.app.post_message(SwitchRequested(service, target))

    async def discover(self) -> Hits:
        for command, help_text, pair in self._pairs():
            yield DiscoveryHit(command, partial(self._request, pair), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command, help_text, pair in self._pairs():
            # "payments local" should find "Switch payments → local" too
            score = max(matcher.match(command), matcher.match(command.replace(" → ", " ")))
            if score > 0:
                yield Hit(
                    score, matcher.highlight(command), partial(self._request, pair), help=help_text
                )
