"""The command table of the sharding proxy: where each command's keys are and how it is routed.

Key positions follow Redis' COMMAND output (first, last, step; a negative last counts from the
end). Commands not listed are refused: a command whose keys devamb cannot find could reach the
wrong shard silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# How a command is routed.
KEY = "key"  # to the shard of its one key, the first argument
KEYED = "keyed"  # to the shard of its keys, wherever they are; they must share one shard
SPLIT = "split"  # keys may be on several shards: one sub-command per shard, replies merged
EVERY = "every"  # to every shard, replies merged
LOCAL = "local"  # answered by devamb (PING, SELECT, AUTH, ...)
REFUSED = "refused"  # answered with an error saying why
CONTAINER = "container"  # routed by its subcommand (SCRIPT LOAD, CLIENT SETNAME, ...)


class Merge(Enum):
    """How the replies of a split or every-shard command become one."""

    ARRAY = "array"  # MGET: elements back in key order
    SUM = "sum"  # DEL, EXISTS, DBSIZE: add the integers
    OK = "ok"  # MSET, FLUSHDB: +OK when every shard said +OK
    FIRST = "first"  # SCRIPT LOAD: the same answer from every shard


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    route: str
    first: int = 1  # position of the first key (0: none at a fixed position)
    last: int = 1  # of the last key; -1 is the last argument, -2 the one before
    step: int = 1  # 2 for key-value pairs
    numkeys: int = 0  # position of a key count whose keys follow it (EVAL, ZUNIONSTORE)
    streams: bool = False  # keys follow a STREAMS word, as many as the ids after them (XREAD)
    merge: Merge | None = None
    reason: str = ""  # why a refused command is refused

    def keys(self, args: list[bytes]) -> list[bytes]:
        """The keys among `args` (args[0] is the command); raises ArityError when missing."""
        keys: list[bytes] = []
        count = len(args)
        if self.first:
            last = self.last if self.last >= 0 else count + self.last
            if not self.first <= last < count or (self.numkeys and count <= self.numkeys):
                raise ArityError(self.name)
            keys.extend(args[self.first : last + 1 : self.step])
        if self.numkeys:
            try:
                n = int(args[self.numkeys])
            except (IndexError, ValueError):
                raise ArityError(self.name) from None
            begin = self.numkeys + 1
            if n < 0 or begin + n > count:
                raise ArityError(self.name)
            keys.extend(args[begin : begin + n])
        if self.streams:
            words = [bytes(a).upper() for a in args]
            if b"STREAMS" not in words:
                raise ArityError(self.name)
            rest = args[words.index(b"STREAMS") + 1 :]
            if not rest or len(rest) % 2:
                raise ArityError(self.name)
            keys.extend(rest[: len(rest) // 2])
        if self.step > 1 and (count - self.first) % self.step:
            raise ArityError(self.name)
        return keys


class ArityError(Exception):
    """A command lacks the arguments that hold its keys."""

    def __init__(self, name: str) -> None:
        super().__init__(f"wrong number of arguments for '{name.lower()}' command")


def hashed_part(key: bytes) -> bytes:
    """The part of a key that picks its shard: the text of a non-empty {hash tag}, or all of it."""
    open_ = key.find(b"{")
    if open_ < 0:
        return key
    close = key.find(b"}", open_ + 1)
    return key[open_ + 1 : close] if close > open_ + 1 else key


# -- the table -------------------------------------------------------------------------------

SINGLE_KEY = """
GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN INCR DECR INCRBY DECRBY INCRBYFLOAT
GETRANGE SETRANGE SUBSTR GETBIT SETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO LCS
EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME PEXPIRETIME TTL PTTL PERSIST TYPE DUMP RESTORE
HSET HSETNX HGET HMSET HMGET HDEL HLEN HSTRLEN HEXISTS HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT
HSCAN HRANDFIELD
LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS
SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP SRANDMEMBER SSCAN
ZADD ZREM ZCARD ZSCORE ZMSCORE ZINCRBY ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE
ZRANGEBYLEX ZREVRANGEBYLEX ZRANK ZREVRANK ZCOUNT ZLEXCOUNT ZREMRANGEBYRANK ZREMRANGEBYSCORE
ZREMRANGEBYLEX ZSCAN ZPOPMIN ZPOPMAX ZRANDMEMBER
PFADD GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO
GEORADIUSBYMEMBER_RO GEOSEARCH
XADD XLEN XRANGE XREVRANGE XDEL XTRIM XACK XCLAIM XAUTOCLAIM XPENDING XSETID
SORT SORT_RO
"""
# Several keys that must live on one shard (keep them together with a {hash tag}).
ALL_KEYS = "SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE PFCOUNT PFMERGE"
TWO_KEYS = "RENAME RENAMENX COPY SMOVE RPOPLPUSH LMOVE ZRANGESTORE GEOSEARCHSTORE"

_SEVERAL_SHARDS = "keys live on several shards"
_WATCH = "WATCH needs a connection of its own to one server; MULTI/EXEC work without it"
_BLOCKING = "a blocking command would hold a shard connection all clients share"
_PUBSUB = "pub/sub needs a connection of its own"
_SERVER = "it concerns one server; connect to a shard directly"

REFUSALS = {
    _SEVERAL_SHARDS: "KEYS SCAN RANDOMKEY MOVE SWAPDB",
    _WATCH: "WATCH UNWATCH",
    _BLOCKING: "BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN BZPOPMAX BZMPOP WAIT WAITAOF",
    _PUBSUB: "SUBSCRIBE PSUBSCRIBE SSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE PUBLISH "
    "SPUBLISH PUBSUB MONITOR",
    _SERVER: "INFO CONFIG SAVE BGSAVE BGREWRITEAOF LASTSAVE SHUTDOWN SLAVEOF REPLICAOF SYNC PSYNC "
    "DEBUG SLOWLOG LATENCY MEMORY LOLWUT ROLE TIME CLUSTER READONLY READWRITE ACL MODULE "
    "FUNCTION FAILOVER RESET",
}


def _build() -> dict[str, Command]:
    table: dict[str, Command] = {}

    def add(command: Command) -> None:
        table[command.name] = command

    for name in SINGLE_KEY.split():
        add(Command(name, KEY))
    for name in ALL_KEYS.split():
        add(Command(name, KEYED, 1, -1))
    for name in TWO_KEYS.split():
        add(Command(name, KEYED, 1, 2))
    add(Command("MSETNX", KEYED, 1, -1, 2))  # atomic: cannot be split
    add(Command("BITOP", KEYED, 2, -1))
    for name in ("OBJECT", "XINFO", "XGROUP"):  # OBJECT ENCODING key, XINFO STREAM key, ...
        add(Command(name, KEYED, 2, 2))
    for name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"):
        add(Command(name, KEYED, 0, numkeys=2))
    for name in ("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"):
        add(Command(name, KEYED, 1, 1, numkeys=2))
    for name in ("ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD", "LMPOP", "ZMPOP"):
        add(Command(name, KEYED, 0, numkeys=1))
    for name in ("XREAD", "XREADGROUP"):
        add(Command(name, KEYED, 0, streams=True))
    add(Command("MGET", SPLIT, 1, -1, merge=Merge.ARRAY))
    for name in ("DEL", "UNLINK", "EXISTS", "TOUCH"):
        add(Command(name, SPLIT, 1, -1, merge=Merge.SUM))
    add(Command("MSET", SPLIT, 1, -1, 2, merge=Merge.OK))
    add(Command("DBSIZE", EVERY, 0, merge=Merge.SUM))
    for name in ("FLUSHDB", "FLUSHALL"):
        add(Command(name, EVERY, 0, merge=Merge.OK))
    add(Command("SCRIPT|LOAD", EVERY, 0, merge=Merge.FIRST))
    add(Command("SCRIPT|FLUSH", EVERY, 0, merge=Merge.OK))
    for name in ("PING", "ECHO", "SELECT", "QUIT", "AUTH", "COMMAND", "HELLO"):
        add(Command(name, LOCAL, 0))
    for name in ("CLIENT|SETNAME", "CLIENT|SETINFO"):
        add(Command(name, LOCAL, 0))
    for name in ("MULTI", "EXEC", "DISCARD"):  # kept by the session, sent whole at EXEC
        add(Command(name, LOCAL, 0))
    for name in ("SCRIPT", "CLIENT"):
        add(Command(name, CONTAINER, 0))
    for reason, names in REFUSALS.items():
        for name in names.split():
            add(Command(name, REFUSED, 0, reason=reason))
    return table


COMMANDS = _build()
# Looked up by the name as the client wrote it: both common spellings, as bytes.
BY_NAME: dict[bytes, Command] = {
    spelling: command
    for name, command in COMMANDS.items()
    for spelling in (name.encode(), name.lower().encode())
}


def lookup(args: list[bytes]) -> Command | None:
    """The table entry for a command (its subcommand's for SCRIPT, CLIENT), or None."""
    command = BY_NAME.get(args[0]) or BY_NAME.get(bytes(args[0]).upper())
    if command is not None and command.route == CONTAINER:
        sub = bytes(args[1]).upper() if len(args) > 1 else b""
        return COMMANDS.get(f"{command.name}|{sub.decode('latin-1')}") or Command(
            f"{command.name} {sub.decode('latin-1')}".strip(),
            REFUSED,
            0,
            reason="only SCRIPT LOAD/FLUSH and CLIENT SETNAME/SETINFO are handled",
        )
    return command
