"""Folders watched with watchfiles' native watcher (`RustNotify`), waited on from asyncio.

Importing the `watchfiles` package imports anyio (for `awatch`) and multiprocessing (for its
process runner): 2.7 MiB of an engine's 37 MiB after start (issue 22). The engine needs only the
native watcher, so it loads `watchfiles._rust_notify` without the package and waits on it in a
thread of its own as `awatch` does (not the loop's default executor, which resolves names for
the asyncio loop), with `awatch`'s defaults (the WATCHFILES_* variables, polling on WSL).
Its API is the same from watchfiles 0.21 to 1.x (pyproject pins that range); a later import of
`watchfiles` itself reuses the loaded module.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import os
import platform
import sys
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

NATIVE = "watchfiles._rust_notify"
STEP_MS = 50  # awatch's step: how long the watcher waits for more changes before it answers
TIMEOUT_MS = 5_000  # awatch's timeout off Windows: the thread comes back to check its stop event
POLL_DELAY_MS = 300  # awatch's, used when polling


def native() -> ModuleType:
    """`watchfiles._rust_notify`, loaded without running `watchfiles/__init__.py`."""
    module = sys.modules.get(NATIVE)
    if module is not None:
        return module
    package = importlib.util.find_spec("watchfiles")  # a top-level spec: nothing is run
    folders = package.submodule_search_locations if package is not None else None
    spec = importlib.machinery.PathFinder.find_spec(NATIVE, list(folders or []))
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {NATIVE!r}", name=NATIVE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[NATIVE] = module  # the native module initialises once per process
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[NATIVE]
        raise
    return module


def _flag(name: str) -> bool:
    return bool(os.getenv(name))


def _force_polling() -> bool:
    """WATCHFILES_FORCE_POLLING, else polling on WSL (inotify misses Windows-side edits)."""
    value = os.getenv("WATCHFILES_FORCE_POLLING")
    if value:
        return value.lower() not in {"false", "disable", "disabled"}
    uname = platform.uname()
    return "microsoft-standard" in uname.release.lower() and uname.system.lower() == "linux"


def _poll_delay_ms() -> int:
    value = os.getenv("WATCHFILES_POLL_DELAY_MS")
    return int(value) if value and value.isdecimal() else POLL_DELAY_MS


async def watch_folders(
    folders: Sequence[Path], debounce_ms: int, stop: asyncio.Event
) -> AsyncIterator[set[tuple[int, str]]]:
    """(kind, path) changes in `folders` (not their subfolders), grouped over up to
    `debounce_ms`, until `stop` is set. Kinds are watchfiles' `Change` values."""
    watcher = native().RustNotify(
        [str(f) for f in folders], _flag("WATCHFILES_DEBUG"), _force_polling(), _poll_delay_ms(),
        False, _flag("WATCHFILES_IGNORE_PERMISSION_DENIED"),
    )
    thread = ThreadPoolExecutor(1, thread_name_prefix="devamb-watch")
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                raw = await loop.run_in_executor(
                    thread, watcher.watch, debounce_ms, STEP_MS, TIMEOUT_MS, stop)
            except asyncio.CancelledError:
                stop.set()  # the thread sees it within STEP_MS and ends
                raise
            if raw == "stop":
                return
            if raw == "signal":
                raise RuntimeError("watch thread unexpectedly received a signal")
            if raw != "timeout":
                yield raw
    finally:
        thread.shutdown(wait=False)  # its last watch() returns within STEP_MS of `stop`
        watcher.close()
