"""The profile watcher's native watcher (devamb/engine/watch.py): changes in a folder come out
grouped, a set stop event ends it, and watchfiles itself still imports beside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from devamb.engine.watch import watch_folders

ADDED, MODIFIED, DELETED = 1, 2, 3  # watchfiles.Change


async def first_change(folder: Path, act: str) -> set[tuple[int, str]]:
    stop = asyncio.Event()
    path = folder / "devamb.yaml"
    if act != "add":
        path.write_text("version: 1\n")

    async def change() -> None:
        await asyncio.sleep(0.3)  # the watcher is started
        if act == "delete":
            path.unlink()
        else:
            path.write_text("version: 1\nservices: {}\n")

    task = asyncio.create_task(change())
    try:
        async for changes in watch_folders([folder], 150, stop):
            if any(p == str(path) for _, p in changes):
                return changes
        raise AssertionError("the watcher ended without a change")
    finally:
        stop.set()
        await task


async def test_it_reports_writes_additions_and_deletions(tmp_path: Path) -> None:
    assert (ADDED, str(tmp_path / "devamb.yaml")) in await asyncio.wait_for(
        first_change(tmp_path, "add"), 30)
    assert (MODIFIED, str(tmp_path / "devamb.yaml")) in await asyncio.wait_for(
        first_change(tmp_path, "modify"), 30)
    assert (DELETED, str(tmp_path / "devamb.yaml")) in await asyncio.wait_for(
        first_change(tmp_path, "delete"), 30)


async def test_a_set_stop_event_ends_it(tmp_path: Path) -> None:
    stop = asyncio.Event()
    seen: list[object] = []

    async def watch() -> None:
        async for changes in watch_folders([tmp_path], 150, stop):
            seen.append(changes)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 30)  # within a step of the watcher, well under the bound
    assert seen == []


async def test_cancelling_it_stops_the_thread(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        async for _ in watch_folders([tmp_path], 150, stop):
            pass

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stop.is_set()


def test_watchfiles_imports_after_the_native_module() -> None:
    """The engine loads `watchfiles._rust_notify` alone; a later `import watchfiles` (a
    library in the same process) reuses it, and the package is not imported before."""
    code = (
        "import sys\n"
        "from devamb.engine.watch import native\n"
        "native()\n"
        "assert 'watchfiles' not in sys.modules and 'anyio' not in sys.modules\n"
        "import watchfiles\n"
        "assert watchfiles.main.RustNotify is native().RustNotify\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
