"""Live reload: which services a profile change touches, and watching the files behind it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devamb.engine.assembly import Profile

log = logging.getLogger("devamb.reload")
DEBOUNCE_MS = 150
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ProfileDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # the spec differs: profile text, or a file it refers to

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        parts = [f"{word} {', '.join(names)}" for word, names in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed))
                 if names]
        return "; ".join(parts) or "no service changed"


def diff_profiles(old: Profile, new: Profile) -> ProfileDiff:
    return ProfileDiff(
        added=tuple(n for n in new.services if n not in old.services),
        removed=tuple(n for n in old.services if n not in new.services),
        changed=tuple(
            n for n, spec in new.services.items()
            if n in old.services and old.services[n] != spec
        ),
    )


def watched_files(profile: Profile) -> set[Path]:
    """The profile, its .env, and every file a target reads (mock files, ...)."""
    files = {profile.path.resolve(), profile.path.resolve().parent / ".env"}
    for service in profile.services.values():
        files.update(service.schema_files)
        for target in service.targets.values():
            files.update(Path(f).resolve() for f in target.watched_files())
    return files


class Reloadable(Protocol):
    """What the watcher drives: the profile in force, and a reload of its files."""

    @property
    def profile(self) -> Profile: ...

    async def reload(self) -> bool: ...


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a file changed: mtime, size and inode (None: it does not exist)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino


async def watch_profile(engine: Reloadable) -> None:
    """Reload the engine whenever a watched file changes, once the files have been quiet for
    DEBOUNCE_MS. The few files are polled (a stat each every POLL_SECONDS): a file watcher
    library with its thread and async runtime cost ~2 MiB of the engine's RSS (issue 22).
    Editors that save by replacing the file are seen too (its inode changes), and a file
    that appears (a new .env) or goes away."""
    loop = asyncio.get_running_loop()
    while True:
        files = sorted(watched_files(engine.profile))
        seen = [_stamp(f) for f in files]
        changed: set[Path] = set()
        last_change = 0.0
        while not changed or loop.time() - last_change < DEBOUNCE_MS / 1000:
            await asyncio.sleep(POLL_SECONDS)
            now = [_stamp(f) for f in files]
            moved = {f for f, old, new in zip(files, seen, now, strict=True) if old != new}
            if moved:
                changed |= moved
                last_change = loop.time()
            seen = now
        log.info("changed: %s", ", ".join(sorted(f.name for f in changed)))
        await engine.reload()  # then watch the files of the profile now in force
