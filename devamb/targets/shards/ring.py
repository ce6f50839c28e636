"""Shards on a ketama ring, with ejection: a shard failing `eject_after` times in a row leaves
the ring for `eject_for`; its keys rehash to the others meanwhile."""

from __future__ import annotations

import bisect
import hashlib
import struct
import time
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import chain, repeat
from operator import mod
from typing import Generic, TypeVar

from devamb.cluster.hashring import HashRing
from devamb.targets.shards.session import NoShard

M = TypeVar("M")

try:  # CPython's own MD5 costs half of OpenSSL 3's per call; HashRing's key_hash, made faster
    from _md5 import md5 as _md5  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    _md5 = hashlib.md5
_digest = type(_md5()).digest
_point = struct.Struct("<I").unpack_from  # a ketama point: the first 4 bytes of the MD5
_chain = chain.from_iterable


class ShardRing(Generic[M]):
    """Shards on a ketama ring; one failing `eject_after` times in a row leaves for `eject_for`."""

    def __init__(
        self,
        members: Mapping[str, M],
        *,
        eject_after: int,
        eject_for: float,
        notify: Callable[[str, str], None],
        describe: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.members = dict(members)
        self.eject_after = eject_after
        self.eject_for = eject_for
        self._notify = notify
        self._describe = describe  # "shard a (tcp://…)"
        self._clock = clock
        self._full = HashRing(list(self.members))
        # The ring's points and the member owning each (read by a session's run of commands,
        # which picks shards with this method's code inlined)
        self.points: list[int] = []
        self.owners: list[M] = []
        self.failures: Counter[str] = Counter()  # consecutive, by shard
        self.last_error: dict[str, str] = {}
        self.ejected: dict[str, float] = {}  # shard -> clock time it returns
        self._next_return = float("inf")
        self._rebuild()

    def pick(self, key: bytes) -> M:
        """The member owning `key`: `HashRing.node_for(key)`, at a fraction of its cost."""
        if self.ejected:
            if self._clock() >= self._next_return:
                self._restore()
            if not self.owners:
                soonest = max(min(self.ejected.values()) - self._clock(), 0)
                raise NoShard(f"every shard is ejected; the first returns in {soonest:.0f}s")
        point = int.from_bytes(_md5(key).digest()[:4], "little")
        owners = self.owners
        return owners[bisect.bisect_left(self.points, point) % len(owners)]

    def pick_all(self, keys: list[bytes]) -> list[M]:
        """`pick` for each key, in C (for a ring without ejected shards)."""
        points = _chain(map(_point, map(_digest, map(_md5, keys))))
        owners = self.owners
        at = map(bisect.bisect_left, repeat(self.points), points)
        return list(map(owners.__getitem__, map(mod, at, repeat(len(owners)))))

    def live(self) -> list[M]:
        if self.ejected and self._clock() >= self._next_return:
            self._restore()
        return [m for name, m in self.members.items() if name not in self.ejected]

    def failed(self, name: str, reason: str) -> None:
        self.failures[name] += 1
        self.last_error[name] = reason
        if not self.eject_after or self.failures[name] < self.eject_after:
            return
        if name in self.ejected:
            return
        self.ejected[name] = self._clock() + self.eject_for
        self._rebuild()
        self._notify(
            "warning",
            f"{self._describe(name)} ejected for {self.eject_for:g}s after "
            f"{self.failures[name]} failures in a row ({reason}); its keys go to the other shards",
        )

    def ok(self, name: str) -> None:
        if self.failures[name]:
            self.failures[name] = 0

    def state(self, name: str) -> str:
        if name in self.ejected:
            return "ejected"
        return "failing" if self.failures[name] else "up"

    def returns_in(self, name: str) -> float | None:
        until = self.ejected.get(name)
        return None if until is None else max(until - self._clock(), 0.0)

    def _restore(self) -> None:
        now = self._clock()
        back = [name for name, until in self.ejected.items() if until <= now]
        for name in back:
            del self.ejected[name]
            self.failures[name] = 0
        self._rebuild()
        for name in back:
            self._notify("info", f"{self._describe(name)} is back on the ring")

    def _rebuild(self) -> None:
        ring = self._full.without(set(self.ejected)) if self.ejected else self._full
        if ring is None:
            self.points, self.owners = [], []
        else:  # HashRing's own tables: node_for is bisect_left over _hashes into _owners
            self.points = ring._hashes
            self.owners = [self.members[name] for name in ring._owners]
        self._next_return = min(self.ejected.values(), default=float("inf"))
