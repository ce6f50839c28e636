"""Live reload: which services a profile change touches, and watching the files behind it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devamb.engine.assembly import Profile
from devamb.engine.watch import watch_folders

log = logging.getLogger("devamb.reload")
DEBOUNCE_MS = 150


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


async def watch_profile(engine: Reloadable) -> None:
    """Reload the engine whenever a watched file changes (editors that save by replacing the
    file are seen too: the folders are watched, not the files)."""
    while True:
        files = watched_files(engine.profile)
        folders = sorted({f.parent for f in files if f.parent.exists()})
        restart = asyncio.Event()
        try:
            async for raw in watch_folders(folders, DEBOUNCE_MS, restart):
                changes = {(kind, path) for kind, path in raw if Path(path).resolve() in files}
                if not changes:
                    continue
                log.info("changed: %s", ", ".join(sorted({Path(p).name for _, p in changes})))
                await engine.reload()
                if watched_files(engine.profile) != files:
                    restart.set()  # the set of files changed: watch the new set
        except (OSError, RuntimeError) as exc:
            log.warning("watching the profile stopped: %s", exc)
            return
