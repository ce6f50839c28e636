"""EngineFeed: reads an engine's event stream and turns it into Textual messages."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from textual.message import Message

from devamb.control.protocol import Event, ExchangeSummary

from .gateway import EngineCallFailed, EngineGateway, failure_text
from .messages import (
    EngineLost,
    EngineNotice,
    FaultsChanged,
    ProfileReloaded,
    StatsUpdated,
    TargetSwitched,
    TrafficPending,
)
from .model.trends import Trends

DEFAULT_BACKLOG = 2000
YIELD_EVERY = 100  # let the UI run between long bursts of already-queued events
STREAM_FAILED = "the engine's event stream failed"


class EngineFeed:
    """Follows the engine's `events()` through the gateway; posts one message per event, except
    exchanges.

    Exchanges are buffered (bounded: under overload the oldest are dropped and counted) and
    announced with a single `TrafficPending` until the app takes them with `take_exchanges()`,
    so however fast they come, the UI handles them in batches at its own pace. Stats samples
    are recorded into `trends` as they come, so coalescing `StatsUpdated` loses no history.
    """

    def __init__(
        self,
        gateway: EngineGateway,
        post: Callable[[Message], object],
        trends: Trends,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.gateway = gateway
        self._post = post
        self.trends = trends
        self._pending: deque[ExchangeSummary] = deque(maxlen=backlog)
        self._announced = False
        self.dropped = 0

    def take_exchanges(self) -> list[ExchangeSummary]:
        """Everything buffered since the last call, oldest first."""
        batch = list(self._pending)
        self._pending.clear()
        self._announced = False
        return batch

    async def run(self) -> None:
        """Follow the stream until it ends; then post `EngineLost` (never raises)."""
        try:
            count = 0
            async for event in self.gateway.follow(lambda engine: engine.events()):
                self.handle(event)
                count += 1
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except EngineCallFailed as failure:
            reason = failure.text if failure.lost else f"{STREAM_FAILED}: {failure.text}"
        except Exception as error:  # whatever breaks, the UI says so instead of crashing
            reason = f"{STREAM_FAILED}: {failure_text(error)}"
        else:
            reason = "the engine stopped"
        self._post(EngineLost(reason))

    def handle(self, event: Event) -> None:
        data: dict[str, Any] = dict(event)
        kind = data.get("type")
        if kind == "exchange":
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(data["exchange"])
            if not self._announced:
                self._announced = True
                self._post(TrafficPending())
        elif kind == "stats":
            services = data.get("services", {})
            self.trends.record(services)  # every sample, even when the message is coalesced
            self._post(StatsUpdated(services))
        elif kind == "switched":
            self._post(
                TargetSwitched(
                    data["service"], data["target"], data.get("previous"), data.get("time")
                )
            )
        elif kind == "faults":
            self._post(
                FaultsChanged(data["service"], list(data.get("faults", [])), data.get("time"))
            )
        elif kind == "reloaded":
            self._post(
                ProfileReloaded(
                    list(data.get("added", [])),
                    list(data.get("removed", [])),
                    list(data.get("changed", [])),
                )
            )
        elif kind == "notice":
            self._post(
                EngineNotice(
                    data.get("level", "info"), str(data.get("message", "")), data.get("time")
                )
            )
        elif kind == "lost":
            count = data.get("count", 0)
            self._post(
                EngineNotice(
                    "warning", f"the UI fell behind and skipped {count} events", data.get("time")
                )
            )
        elif kind == "engine" and data.get("state") == "stopping":
            self._post(EngineNotice("warning", "the engine is stopping", data.get("time")))
