"""DevambApp: the TUI. `make_app()` builds it (CLI, tests, screenshots); `run_tui()` runs it.

The app talks to the engine only through its `EngineGateway` (which wraps the `EngineControl` it
is given, and owns the call timeouts and the words for failures); screens get the same gateway.
Data flows down: the app keeps the engine's status, trends and traffic and sets them on the main
screen. Requests flow up as messages (`SwitchRequested`, `MainScreen.PickTarget`, ...), and the
app turns them into calls. Each message has one handler in the app's class hierarchy (see
tests/ui/test_handlers_unique.py): `FeatureActions` handles other messages than the app core.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel

from devamb.control.protocol import EngineControl, ServiceStatus, Status

from .commands import SwitchCommands
from .features import FeatureActions, FeatureHost
from .feed import EngineFeed
from .gateway import EngineCallFailed, EngineGateway
from .messages import (
    EngineLost,
    EngineNotice,
    FaultsChanged,
    ProfileReloaded,
    StatsUpdated,
    SwitchCompleted,
    SwitchRequested,
    TargetSwitched,
    TrafficPending,
)
from .model.traffic import DEFAULT_CAPACITY, TrafficStore
from .model.trends import Trends
from .screens.engine_died import EngineDied
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .screens.target_picker import TargetPicker
from .widgets.traffic_list import TrafficList

Restart = Callable[[], Awaitable[EngineControl]]

HISTORY = 500  # exchanges fetched on connect, so `attach` shows recent traffic at once
STATUS_EVERY = 2.0  # seconds between full status refreshes (target health, faults, listeners)
DARK, LIGHT = "textual-dark", "textual-light"


class DevambApp(FeatureActions, App[None]):
    TITLE = "devamb"
    CSS_PATH = [Path(__file__).with_name("app.tcss"), Path(__file__).with_name("features.tcss")]
    COMMANDS = App.COMMANDS | {SwitchCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
    ]

    def __init__(
        self,
        control: EngineControl,
        *,
        owns_engine: bool = False,
        restart: Restart | None = None,
        traffic_capacity: int = DEFAULT_CAPACITY,
        poll_status: bool = True,
        clock: Callable[[], float] = time.time,
        announce_attach: bool = False,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.gateway = EngineGateway(control)
        self.owns_engine = owns_engine
        self.announce_attach = announce_attach  # `up` found an engine running and attached
        self.restart = restart
        self.poll_status = poll_status
        self.status: Status | None = None
        self.trends = Trends()
        self.traffic = TrafficStore(traffic_capacity)
        self.feed: EngineFeed | None = None
        self.connected = asyncio.Event()
        self._quitting = False
        self._engine_lost = False

    @property
    def control(self) -> EngineControl:
        """The engine's control object now (a restart replaces it)."""
        return self.gateway.control

    # -- lifecycle -----------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        return MainScreen(self.traffic)

    @property
    def main(self) -> MainScreen:
        screen = self.live_main
        assert screen is not None, "the main screen is not running"
        return screen

    @property
    def live_main(self) -> MainScreen | None:
        """The main screen while it runs; None while the app starts or shuts down."""
        screen = self.screen_stack[0] if self.screen_stack else None
        if isinstance(screen, MainScreen) and screen.is_attached and not self._exit:
            return screen
        return None

    def on_mount(self) -> None:
        self.theme = DARK
        self.run_worker(self._connect(), group="connect", exclusive=True)
        if self.poll_status:
            self.set_interval(STATUS_EVERY, self._poll_status)

    async def _connect(self) -> None:
        """Load status and recent traffic, then follow the engine's events."""
        self._engine_lost = False
        try:
            status = await self.gateway.call(lambda engine: engine.status())
            history = await self.gateway.call(lambda engine: engine.exchanges(HISTORY))
        except EngineCallFailed as failure:
            self.post_message(EngineLost(failure.text))
            return
        if self.live_main is None:
            return
        self.title = f"devamb · {status['name']}"
        self.sub_title = status["profile"]
        await self._show_status(status)
        for error in status["errors"]:
            self.main.log_event("error", error)
        self.traffic.add(history)
        self.main.show_traffic()
        self.feed = EngineFeed(self.gateway, self.post_message, self.trends)
        self.run_worker(self.feed.run(), group="engine-feed", exclusive=True)
        self.main.log_event("info", f"connected to the engine ({status['engine']['version']})")
        if self.announce_attach and not self.owns_engine:
            note = (
                f"attached to engine pid {status['engine']['pid']}, which was already running: "
                f"quitting leaves it running (devamb down stops it)"
            )
            self.main.log_event("warning", note)
            self.notify(note, severity="warning", timeout=8)
        self.connected.set()

    def _poll_status(self) -> None:
        if self.status is not None and not self._engine_lost:
            self.run_worker(self._refresh_status(), group="status", exclusive=True)

    async def _refresh_status(self) -> None:
        try:
            status = await self.gateway.call(lambda engine: engine.status())
        except EngineCallFailed as failure:
            if failure.lost:
                self.post_message(EngineLost(failure.text))
            return  # the event stream reports other trouble; a missed refresh is harmless
        await self._show_status(status)

    async def _show_status(self, status: Status) -> None:
        self.status = status
        if self.live_main is not None:
            await self.main.show_status(status)

    async def action_quit(self) -> None:
        """Quit; stop the engine first when this TUI started it."""
        self._quitting = True
        self.workers.cancel_group(self, "engine-feed")
        if self.owns_engine and not self._engine_lost:
            with contextlib.suppress(EngineCallFailed):
                await self.gateway.call(lambda engine: engine.shutdown())
        self.exit()

    # -- the engine's news ---------------------------------------------------------------------

    def on_stats_updated(self, message: StatsUpdated) -> None:
        main = self.live_main
        if main is None:
            return
        if self.status is not None:
            for service in self.status["services"]:
                if service["name"] in message.services:
                    service["stats"] = message.services[service["name"]]
        main.show_stats(message.services, self.trends)

    def on_traffic_pending(self, message: TrafficPending) -> None:
        main = self.live_main
        if self.feed is not None and main is not None:
            self.traffic.add(self.feed.take_exchanges())
            main.show_traffic()
        self.refresh_filter_soon()

    async def on_target_switched(self, message: TargetSwitched) -> None:
        if self.live_main is None:
            return
        previous = f" (was {message.previous})" if message.previous else ""
        self.main.log_event(
            "switch", f"{message.service} → {message.target}{previous}", message.when
        )
        await self._mark_switched(message.service, message.target)

    async def on_faults_changed(self, message: FaultsChanged) -> None:
        self.show_faults_on_screens(message.service, message.faults)
        service = self.service(message.service)
        if service is None or self.status is None or self.live_main is None:
            return
        before = {f.get("name"): bool(f.get("enabled")) for f in service["faults"]}
        after = {f.get("name"): bool(f.get("enabled")) for f in message.faults}
        changes = [
            f"{name} {'on' if enabled else 'off'}"
            for name, enabled in after.items()
            if before.get(name) != enabled
        ] + [f"{name} removed" for name in before if name not in after]
        service["faults"] = message.faults
        if changes:
            self.main.log_event("fault", f"{message.service}: {', '.join(changes)}", message.when)
        await self.main.show_status(self.status)

    def on_profile_reloaded(self, message: ProfileReloaded) -> None:
        # the engine's notice says what changed; the table needs the new services now
        if self.status is not None and not self._engine_lost:
            self.run_worker(self._refresh_status(), group="status", exclusive=True)

    def on_engine_notice(self, message: EngineNotice) -> None:
        if self.live_main is None:
            return
        self.main.log_event(message.level, message.text, message.when)
        if message.level in ("warning", "error"):
            severity: SeverityLevel = "error" if message.level == "error" else "warning"
            self.notify(message.text, severity=severity, timeout=6)

    def on_engine_lost(self, message: EngineLost) -> None:
        if self._quitting or self._engine_lost or self.live_main is None:
            return
        self._engine_lost = True
        self.connected.clear()
        self.main.log_event("error", f"engine lost: {message.reason}")
        self.push_screen(
            EngineDied(message.reason, can_restart=self.restart is not None),
            self._engine_died_choice,
        )

    def _engine_died_choice(self, choice: str | None) -> None:
        if choice == "restart":
            self.run_worker(self._restart(), group="connect", exclusive=True)
        else:
            self.exit()

    async def _restart(self) -> None:
        assert self.restart is not None
        self.main.log_event("info", "restarting the engine…")
        await close_control(self.control)
        try:
            self.gateway.control = await self.restart()
        except Exception as error:  # any failure is shown as a reason, never a traceback
            # not an engine call (no engine answers yet): say what the launcher raised
            self._engine_lost = False
            why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self.post_message(EngineLost(f"could not restart the engine: {why}"))
            return
        await self._connect()

    # -- the user's requests -------------------------------------------------------------------

    def service(self, name: str) -> ServiceStatus | None:
        if self.status is None:
            return None
        return next((s for s in self.status["services"] if s["name"] == name), None)

    @on(MainScreen.PickTarget)
    def _pick_target(self, message: MainScreen.PickTarget) -> None:
        service = self.service(message.service)
        if service is None:
            return

        def chosen(target: str | None) -> None:
            if target is None:
                return
            if target == service["target"]:
                self.notify(f"{service['name']} already routes to {target}", timeout=3)
                return
            self.post_message(SwitchRequested(service["name"], target))

        self.push_screen(TargetPicker(service), chosen)

    def on_switch_requested(self, message: SwitchRequested) -> None:
        self.run_worker(self._switch(message.service, message.target), group="switch")

    async def _switch(self, service: str, target: str) -> None:
        try:
            await self.gateway.call(lambda engine: engine.switch(service, target))
        except EngineCallFailed as failure:
            reason = failure.text
            if failure.lost:
                self.post_message(SwitchCompleted(service, target, reason))
                self.post_message(EngineLost(reason))
                return
            if self.live_main is not None:
                self.main.log_event("error", f"switch {service} → {target} failed: {reason}")
            self.notify(reason, title="Switch failed", severity="error")
            self.post_message(SwitchCompleted(service, target, reason))
            return
        await self._mark_switched(service, target)
        self.post_message(SwitchCompleted(service, target))

    async def _mark_switched(self, service_name: str, target: str) -> None:
        service = self.service(service_name)
        if service is None or self.status is None or self.live_main is None:
            return
        service["target"] = target
        for entry in service["targets"]:
            entry["active"] = entry["name"] == target
        await self.main.show_status(self.status)

    @on(TrafficList.Opened)
    def _open_exchange(self, message: TrafficList.Opened) -> None:
        self.push_screen(self.exchange_screen(message.exchange))

    async def _exchange_detail(self, exchange_id: int) -> dict[str, Any] | None:
        """The engine's full record of one exchange; None if it is gone or the engine is."""
        try:
            return await self.gateway.call(lambda engine: engine.exchange(exchange_id))
        except EngineCallFailed:
            return None

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.current_theme.dark else DARK


if TYPE_CHECKING:

    def _features_host(app: DevambApp) -> FeatureHost:
        """mypy checks here that the app has all that its FeatureActions handlers use."""
        return app


def make_app(
    control: EngineControl,
    *,
    owns_engine: bool = False,
    restart: Restart | None = None,
    traffic_capacity: int = DEFAULT_CAPACITY,
    poll_status: bool = True,
    clock: Callable[[], float] = time.time,
    announce_attach: bool = False,
) -> DevambApp:
    """Build the app; the CLI, the tests and the screenshot script all start it this way."""
    return DevambApp(
        control,
        owns_engine=owns_engine,
        restart=restart,
        traffic_capacity=traffic_capacity,
        poll_status=poll_status,
        clock=clock,
        announce_attach=announce_attach,
    )


async def close_control(control: EngineControl) -> None:
    """Release a control client's connections (an in-process engine has nothing to close).

    `close()` is not part of EngineControl; the control-API client has it.
    """
    close = getattr(control, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def run_tui(
    control: EngineControl,
    *,
    owns_engine: bool,
    restart: Restart | None = None,
    announce_attach: bool = False,
) -> None:
    """Run the TUI until the user quits (blocking). Quitting stops the engine if `owns_engine`.

    SIGTERM ends the TUI as `q` would, restoring the terminal. (However this process ends, an
    engine it owns also stops: the CLI ties the two with a lifeline pipe.)
    """

    async def main() -> None:
        app = make_app(
            control, owns_engine=owns_engine, restart=restart, announce_attach=announce_attach
        )
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, app.exit)
        try:
            await app.run_async()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
            await close_control(app.control)  # the last one, if a restart replaced it

    asyncio.run(main())


__all__ = ["DevambApp", "close_control", "make_app", "run_tui"]
