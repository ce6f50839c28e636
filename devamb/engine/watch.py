"""The files behind a profile, looked at every `POLL_S` from the event loop.

A profile reads a handful of files (itself, its .env, mock and .proto files): a stat of each,
three times a second, costs a few microseconds and needs no thread. watchfiles' native watcher,
used before, brought its library, its own thread and one waiting on it: 0.9 MiB of the demo
engine's 32.3 MiB RSS after start (issue 22). A file has changed when its inode, size or
modification or change time differ: an editor that saves by replacing the file gives it a new
inode; one that writes in place changes its times (nanoseconds where the filesystem keeps them).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path

ADDED, MODIFIED, DELETED = 1, 2, 3  # the kinds of change (watchfiles' `Change` values)
POLL_S = 0.3  # seconds between looks (watchfiles' own polling default)
STEP_S = 0.05  # once a change is seen, how soon to look again for the rest of a save

Stamp = tuple[int, int, int, int] | None  # inode, size, mtime ns, ctime ns; None: no such file


def stamp(path: Path) -> Stamp:
    try:
        found = os.stat(path)
    except OSError:  # gone, or its folder is
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def changes(before: Mapping[Path, Stamp], now: Mapping[Path, Stamp]) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for path, current in now.items():
        earlier = before.get(path)
        if current != earlier:
            kind = ADDED if earlier is None else DELETED if current is None else MODIFIED
            found.add((kind, str(path)))
    return found


async def watch_files(
    files: Collection[Path], debounce_ms: int, stop: asyncio.Event
) -> AsyncIterator[set[tuple[int, str]]]:
    """(kind, path) changes of `files`, grouped over up to `debounce_ms` (a save that writes,
    renames and sets modes comes out once), until `stop` is set."""
    paths = sorted(set(files))
    seen = {path: stamp(path) for path in paths}
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(POLL_S)
        if stop.is_set():
            return
        now = {path: stamp(path) for path in paths}
        found = changes(seen, now)
        if not found:
            continue
        until = loop.time() + debounce_ms / 1000
        while loop.time() < until and not stop.is_set():
            await asyncio.sleep(STEP_S)
            later = {path: stamp(path) for path in paths}
            more = changes(now, later)
            if not more:
                break
            found |= more
            now = later
        seen = now
        yield found
