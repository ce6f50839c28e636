"""MULTI/EXEC through a sharded target: the commands are kept until EXEC, then sent whole to the
one shard all their keys hash to.

The shards' connections are shared by every client, so a transaction cannot be opened on one and
left open while the client takes its time: devamb answers MULTI and each `+QUEUED` itself, checks
that every key hashes to the same shard (as Redis Cluster refuses cross-slot keys), and at EXEC
writes `MULTI`, the commands and `EXEC` in one go — nothing of another client can come between
them on the connection, and the shard runs them atomically. A command that cannot be queued
answers its error at once and makes EXEC answer `-EXECABORT`, as redis-server does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devamb.targets.shards import encoder
from devamb.targets.shards.parser import Raw

if TYPE_CHECKING:
    from devamb.targets.shards.link import ShardLink

MULTI = encoder.command([b"MULTI"])
EXEC = encoder.command([b"EXEC"])
QUEUED = b"+QUEUED\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
NESTED = encoder.error("ERR MULTI calls can not be nested")
EXEC_WITHOUT = encoder.error("ERR EXEC without MULTI")
DISCARD_WITHOUT = encoder.error("ERR DISCARD without MULTI")


class Transaction:
    """The commands of one MULTI, not yet sent."""

    __slots__ = ("commands", "failed", "shard")

    def __init__(self) -> None:
        self.commands: list[Raw] = []
        self.shard: ShardLink | None = None  # the (RESP2) link of its keys' shard; None: no key yet
        self.failed = False  # a command could not be queued: EXEC answers EXECABORT

    def cross_shard(self, name: str, shard: ShardLink) -> bytes:
        """The error for a command whose keys are on another shard than the earlier ones."""
        assert self.shard is not None
        return encoder.error(
            f"ERR devamb: a transaction runs on one shard, and '{name}' keys live on shard "
            f"{shard.name} while the transaction's earlier keys live on shard {self.shard.name}; "
            "keep keys used together on one shard with a hash tag, e.g. {user1}:a and {user1}:b"
        )
