"""Commands whose keys live on several shards: one sub-command per shard, replies merged."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from devamb.resp.commands import Merge
from devamb.targets.shards import encoder
from devamb.targets.shards.parser import ProtocolError, is_error, reply_integer, reply_items


class Owed(Protocol):
    """Whoever waits for a merged reply (the client's session)."""

    def ready(self) -> None: ...


def group_keys(
    positions: Sequence[int], args: Sequence[bytes], shard_of: Callable[[bytes], Hashable]
) -> dict[Hashable, list[int]]:
    """Key positions grouped by shard, in the order the shards first appear."""
    groups: dict[Hashable, list[int]] = {}
    for position in positions:
        shard = shard_of(args[position])
        found = groups.get(shard)
        if found is None:
            groups[shard] = [position]
        else:
            found.append(position)
    return groups


def sub_command(args: Sequence[bytes], positions: Sequence[int], step: int) -> bytes:
    """The command for one shard: the name, then each of its keys with the values that follow."""
    picked = [args[0]]
    for position in positions:
        picked.extend(args[position : position + step])
    return encoder.command(picked)


class Fanout:
    """One reply the client is owed, made of one part per shard."""

    __slots__ = ("_error", "_first", "_items", "_left", "_sum", "merge", "owner", "reply")

    def __init__(self, owner: Owed, merge: Merge, parts: int, keys: int = 0) -> None:
        self.owner = owner
        self.merge = merge
        self.reply: bytes | None = None  # set once every part has answered
        self._left = parts
        self._error: bytes | None = None  # the first error a shard answered
        self._sum = 0
        self._first: bytes | None = None
        self._items: list[bytes] = [encoder.NIL] * keys  # MGET: elements by key index

    def part(self, indexes: Sequence[int] = ()) -> Part:
        return Part(self, indexes)

    def part_done(self, part: Part, reply: bytes) -> None:
        if self._error is None:
            try:
                self._take(part, reply)
            except ProtocolError as exc:
                self._error = encoder.error(f"ERR devamb: cannot merge shard replies: {exc}")
        self._left -= 1
        if not self._left:
            self.reply = self._error or self._merged()
            self.owner.ready()

    def _take(self, part: Part, reply: bytes) -> None:
        if is_error(reply):
            self._error = bytes(reply)
        elif self.merge is Merge.SUM:
            self._sum += reply_integer(reply)
        elif self.merge is Merge.ARRAY:
            items = reply_items(reply)
            if len(items) != len(part.indexes):
                raise ProtocolError(f"{len(items)} elements for {len(part.indexes)} keys")
            for index, item in zip(part.indexes, items, strict=True):
                self._items[index] = item
        elif self.merge is Merge.OK:
            if bytes(reply) != encoder.OK:
                raise ProtocolError(f"expected +OK, got {bytes(reply)[:40]!r}")
        elif self._first is None:  # FIRST
            self._first = bytes(reply)

    def _merged(self) -> bytes:
        if self.merge is Merge.SUM:
            return encoder.integer(self._sum)
        if self.merge is Merge.ARRAY:
            return encoder.array(self._items)
        if self.merge is Merge.OK:
            return encoder.OK
        return self._first or encoder.NIL


class Part:
    """The part of a fan-out one shard answers."""

    __slots__ = ("fanout", "indexes")

    def __init__(self, fanout: Fanout, indexes: Sequence[int]) -> None:
        self.fanout = fanout
        self.indexes = indexes  # MGET: which keys of the whole command this part asked for

    def done(self, reply: bytes) -> None:
        self.fanout.part_done(self, reply)
