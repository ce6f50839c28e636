"""The profile watcher (devamb/engine/watch.py): a file's changes come out grouped, whether it
is written in place or replaced as editors save; a set stop event ends it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from devamb.engine.watch import ADDED, DELETED, MODIFIED, watch_files


async def first_change(folder: Path, act: str) -> set[tuple[int, str]]:
    stop = asyncio.Event()
    path = folder / "devamb.yaml"
    if act != "add":
        path.write_text("version: 1\n")

    async def change() -> None:
        await asyncio.sleep(0.3)  # the watcher is started
        if act == "delete":
            path.unlink()
        elif act == "replace":  # as editors save: a new file renamed over the old one
            (folder / ".devamb.yaml.tmp").write_text("version: 1\n")
            os.replace(folder / ".devamb.yaml.tmp", path)
        else:
            path.write_text("version: 1\nservices: {}\n")

    task = asyncio.create_task(change())
    try:
        async for changes in watch_files([path, folder / "other.yaml"], 150, stop):
            if any(p == str(path) for _, p in changes):
                return changes
        raise AssertionError("the watcher ended without a change")
    finally:
        stop.set()
        await task


async def test_it_reports_writes_additions_replacements_and_deletions(tmp_path: Path) -> None:
    path = str(tmp_path / "devamb.yaml")
    assert await asyncio.wait_for(first_change(tmp_path, "add"), 30) == {(ADDED, path)}
    assert await asyncio.wait_for(first_change(tmp_path, "modify"), 30) == {(MODIFIED, path)}
    assert await asyncio.wait_for(first_change(tmp_path, "replace"), 30) == {(MODIFIED, path)}
    assert await asyncio.wait_for(first_change(tmp_path, "delete"), 30) == {(DELETED, path)}


async def test_a_set_stop_event_ends_it(tmp_path: Path) -> None:
    stop = asyncio.Event()
    seen: list[object] = []

    async def watch() -> None:
        async for changes in watch_files([tmp_path / "devamb.yaml"], 150, stop):
            seen.append(changes)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 30)  # at its next look, well under the bound
    assert seen == []


async def test_cancelling_it_ends_it(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        async for _ in watch_files([tmp_path / "devamb.yaml"], 150, stop):
            pass

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
