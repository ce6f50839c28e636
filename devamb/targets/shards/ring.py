"""Shards on a ketama ring, with ejection: a shard failing `eject_after` times in a row leaves
the ring for `eject_for`; its keys rehash to the others meanwhile."""

from __future__ import annotations

import bisect
import hashlib
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Generic, TypeVar

from devamb.cluster.hashring import HashRing
from devamb.targets.shards.session import NoShard

M = TypeVar("M")

try:  # CPython's own MD5 costs half of OpenSSL 3's per call; HashRing's key_hash, made faster
    from _md5 import md5 as _md5  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    _md5 = hashlib.md5
_digest = type(_md5()).digest
_span = struct.Struct("<2xH").unpack_from  # a ketama point (the MD5's first 4 bytes) >> 16
_chain = chain.from_iterable
SPAN = 1 << 16  # points in a span
_LITTLE = sys.byteorder == "little"  # (a ketama point is the digest's first 4 bytes, LE)


def _spans(points: list[int], owners: list[int]) -> list[int]:
    """For each span of SPAN points on the ring, the member owning all of it (its index in
    `owners`' members), or -1 when one of the ring's points falls inside (keys there are
    picked with `bisect`)."""
    spans: list[int] = []
    count = len(points)
    at = 0  # the first of the ring's points at or after the span's first
    for start in range(0, 1 << 32, SPAN):
        while at < count and points[at] < start:
            at += 1
        inside = at < count and points[at] < start + SPAN - 1
        spans.append(-1 if inside or not owners else owners[at % count])
    return spans


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
        # the ring's points and the member owning each (`pick` bisects them)
        self.points: list[int] = []
        self.owners: list[M] = []
        self.listed = list(self.members.values())  # the members, as `pick_all` numbers them
        self._spans: list[int] = []  # see `_spans`
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
        digest = _digest(_md5(key))
        index = self._spans[_span(digest)[0]]
        if index >= 0:  # (the span's one member: see `_spans`)
            return self.listed[index]
        owners = self.owners
        point = int.from_bytes(digest[:4], "little")
        return owners[bisect.bisect_left(self.points, point) % len(owners)]

    def pick_all(self, keys: Sequence[bytes]) -> list[int]:
        """`pick` for each key, in C (for a ring without ejected shards), as the member's index
        in `listed`: the member owning the span of 65,536 points a key's point is in, when one
        member owns all of it (nearly every span: a ring has a few hundred points); `pick` for
        the others."""
        count = len(keys)
        spans: Sequence[int]
        if _LITTLE:  # the digests joined, read as 16-bit words: each one's second is its span
            spans = memoryview(b"".join(map(_digest, map(_md5, keys)))).cast("H")[1::8].tolist()
        else:
            spans = tuple(_chain(map(_span, map(_digest, map(_md5, keys)))))
        found = (list(itemgetter(*spans)(self._spans)) if count > 1
                 else [self._spans[span] for span in spans])
        if -1 in found:
            pick, listed = self.pick, self.listed
            found = [listed.index(pick(key)) if index < 0 else index
                     for key, index in zip(keys, found, strict=True)]
        return found

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
        number = {name: i for i, name in enumerate(self.members)}
        self._spans = _spans(self.points, [number[name] for name in ring._owners] if ring else [])
        self._next_return = min(self.ejected.values(), default=float("inf"))
