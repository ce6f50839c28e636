"""A headless devamb TUI attached to a running engine, for bench/extra.py's `tui` case.

    python bench/tui_driver.py SOCKET [--presses N --out FILE.json] [--service NAME]

Runs `ui.app.make_app(ControlClient(SOCKET))` under Textual's `run_test()` (headless, 120x40)
and prints READY once the app is connected to the engine. Without --presses it stays attached
until SIGTERM. With --presses N it switches the service N times the way a user does (`t`, then
the target's digit, alternating between targets 2 and 1), polls the engine's status until the
switch shows there, then makes as many switches through the control API directly (a baseline),
writes the times to FILE.json, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from textual import events  # noqa: E402
from textual.app import App  # noqa: E402

from devamb.control.client import ControlClient  # noqa: E402
from ui.app import close_control, make_app  # noqa: E402
from ui.screens.target_picker import TargetPicker  # noqa: E402

SIZE = (120, 40)
POLL = 0.002  # seconds between status polls while waiting for a switch


async def active_target(control: ControlClient, service: str) -> str:
    status = await control.status()
    return next(s["target"] for s in status["services"] if s["name"] == service)


async def wait_for(control: ControlClient, service: str, target: str, timeout: float) -> float:
    """Poll status until `service` routes to `target`; the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await active_target(control, service) == target:
            return time.monotonic()
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{service} did not switch to {target} within {timeout} s")


async def main(args: argparse.Namespace) -> int:
    control = ControlClient(args.socket)
    watcher = ControlClient(args.socket)  # a second connection: the app's calls are not ours
    app = make_app(control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with app.run_test(headless=True, size=SIZE) as pilot:
            await asyncio.wait_for(app.connected.wait(), 30)
            await pilot.pause()
            os.write(1, b"READY\n")  # Textual captures print() while the app runs
            if args.presses:
                result = await press(app, watcher, args.service, args.presses)
                args.out.write_text(json.dumps(result, indent=2) + "\n")
            else:
                await stop.wait()
    finally:
        await close_control(watcher)
        await close_control(app.control)
    return 0


def send_key(app: App, key: str) -> float:
    """Deliver a key the way the terminal driver does (Pilot.press also waits for the app to be
    idle, which under steady traffic takes ~1 s a key); returns when it was sent."""
    event = events.Key(key, key)
    event.set_sender(app)
    sent = time.monotonic()
    app._driver.send_message(event)
    return sent


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the TUI did not get there")
        await asyncio.sleep(0.001)


async def press(app: App, watcher: ControlClient, service: str, presses: int) -> dict:
    status = await watcher.status()
    targets = [t["name"] for s in status["services"] if s["name"] == service for t in s["targets"]]
    from_digit, from_t, picker_open, shown_in_tui = [], [], [], []
    problems = []
    for index in range(presses):
        digit = 2 if index % 2 == 0 else 1
        expected = targets[digit - 1]
        await asyncio.sleep(0.5)  # a user's pace
        if app.service(service)["target"] == expected:
            problems.append(f"press {index + 1}: the TUI still showed {expected}; skipped")
            continue
        watch = asyncio.create_task(wait_for(watcher, service, expected, 10.0))
        t_sent = send_key(app, "t")
        await until(lambda: isinstance(app.screen, TargetPicker))
        shown = time.monotonic()
        digit_sent = send_key(app, str(digit))
        seen = await watch
        from_digit.append(round((seen - digit_sent) * 1000, 2))
        from_t.append(round((seen - t_sent) * 1000, 2))
        picker_open.append(round((shown - t_sent) * 1000, 2))
        try:  # the TUI's own view of the switch (from the engine's event stream)
            await until(lambda e=expected: app.service(service)["target"] == e, 30.0)
            shown_in_tui.append(round((time.monotonic() - digit_sent) * 1000, 2))
        except TimeoutError:
            problems.append(f"press {index + 1}: the TUI did not show the switch within 30 s")
            shown_in_tui.append(None)
            await until(lambda e=expected: app.service(service)["target"] == e, 120.0)
    api = []  # the same switches through the control API directly, no TUI in between
    for index in range(presses):
        expected = targets[1 if index % 2 == 0 else 0]
        await asyncio.sleep(0.2)
        called = time.monotonic()
        watch = asyncio.create_task(wait_for(watcher, service, expected, 10.0))
        await watcher.switch(service, expected)
        api.append(round((await watch - called) * 1000, 2))
    await watcher.switch(service, targets[0])
    return {
        "api_switch_ms": api,
        "press_to_switch_ms": from_digit,
        "t_to_switch_ms": from_t,
        "t_to_picker_ms": picker_open,
        "digit_to_shown_in_tui_ms": shown_in_tui,
        "problems": problems,
        "targets": targets,
        "poll_interval_ms": POLL * 1000,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", type=Path)
    parser.add_argument("--service", default="http")
    parser.add_argument("--presses", type=int, default=0)
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
