"""The command table: key positions, routes, hash tags; fan-out splitting and merging."""

from __future__ import annotations

import pytest

from devamb.resp.commands import (
    EVERY,
    KEY,
    KEYED,
    LOCAL,
    REFUSED,
    SPLIT,
    ArityError,
    Merge,
    hashed_part,
    lookup,
)
from devamb.targets.shards import encoder
from devamb.targets.shards.fanout import Fanout, group_keys, sub_command
from devamb.targets.shards.parser import CommandReader


def args(text: str) -> list[bytes]:
    return [w.encode() for w in text.split()]


@pytest.mark.parametrize(
    ("command", "route", "keys"),
    [
        ("get k", KEY, ["k"]),
        ("SET k v EX 10", KEY, ["k"]),
        ("hset h f v", KEY, ["h"]),
        ("MGET a b c", SPLIT, ["a", "b", "c"]),
        ("MSET a 1 b 2", SPLIT, ["a", "b"]),
        ("DEL a b", SPLIT, ["a", "b"]),
        ("RENAME a b", KEYED, ["a", "b"]),
        ("SINTER a b c", KEYED, ["a", "b", "c"]),
        ("MSETNX a 1 b 2", KEYED, ["a", "b"]),
        ("BITOP AND dest a b", KEYED, ["dest", "a", "b"]),
        ("EVAL script 2 a b x y", KEYED, ["a", "b"]),
        ("ZUNIONSTORE d 2 a b WEIGHTS 1 2", KEYED, ["d", "a", "b"]),
        ("ZUNION 2 a b", KEYED, ["a", "b"]),
        ("XREAD COUNT 2 STREAMS s t 0 0", KEYED, ["s", "t"]),
        ("OBJECT ENCODING k", KEYED, ["k"]),
        ("DBSIZE", EVERY, []),
        ("SCRIPT LOAD x", EVERY, []),
        ("PING", LOCAL, []),
        ("client setname x", LOCAL, []),
        ("KEYS *", REFUSED, []),
        ("CLIENT LIST", REFUSED, []),
        ("BLPOP q 0", REFUSED, []),
    ],
)
def test_routes_and_keys(command: str, route: str, keys: list[str]) -> None:
    found = lookup(args(command))
    assert found is not None and found.route == route
    if route in (KEY, KEYED, SPLIT):
        assert found.keys(args(command)) == [k.encode() for k in keys]


@pytest.mark.parametrize(
    "command", ["RENAME a", "EVAL s 3 a b", "EVAL s x", "ZUNIONSTORE d", "XREAD STREAMS s",
                "MSETNX a 1 b"],
)
def test_missing_keys_are_arity_errors(command: str) -> None:
    found = lookup(args(command))
    assert found is not None
    with pytest.raises(ArityError, match="wrong number of arguments"):
        found.keys(args(command))


def test_unknown_commands_are_not_in_the_table() -> None:
    assert lookup(args("NOSUCHCOMMAND x")) is None


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        ("{user1}:a", "user1"),
        ("a{user1}b", "user1"),
        ("{}:a", "{}:a"),  # empty tag: the whole key
        ("{user1", "{user1"),  # no closing brace
        ("a{b}{c}", "b"),  # the first tag only
        ("}{x}", "x"),
        ("plain", "plain"),
    ],
)
def test_hash_tags(key: str, hashed: str) -> None:
    assert hashed_part(key.encode()) == hashed.encode()


class Owner:
    def __init__(self) -> None:
        self.calls = 0

    def ready(self) -> None:
        self.calls += 1


def test_split_and_merge_mget_in_key_order() -> None:
    command = args("MGET a b c d e")
    groups = group_keys(range(1, 6), command, lambda key: "x" if key in (b"a", b"d") else "y")
    assert groups == {"x": [1, 4], "y": [2, 3, 5]}
    assert CommandReader().feed(sub_command(command, [2, 3, 5], 1))[0][0] == args("MGET b c e")
    owner = Owner()
    fanout = Fanout(owner, Merge.ARRAY, 2, keys=5)
    bulk = encoder.bulk
    fanout.part([1, 2, 4]).done(encoder.array([bulk(b"B"), encoder.NIL, bulk(b"E")]))
    assert fanout.reply is None and owner.calls == 0
    fanout.part([0, 3]).done(encoder.array([bulk(b"A"), bulk(b"D")]))
    assert owner.calls == 1
    assert fanout.reply == encoder.array(
        [bulk(b"A"), bulk(b"B"), encoder.NIL, bulk(b"D"), bulk(b"E")]
    )


def test_mset_sub_commands_carry_their_values() -> None:
    command = args("MSET a 1 b 2 c 3")
    assert CommandReader().feed(sub_command(command, [1, 5], 2))[0][0] == args("MSET a 1 c 3")


@pytest.mark.parametrize(
    ("merge", "replies", "merged"),
    [
        (Merge.SUM, [b":2\r\n", b":3\r\n"], b":5\r\n"),
        (Merge.OK, [b"+OK\r\n", b"+OK\r\n"], b"+OK\r\n"),
        (Merge.FIRST, [b"$2\r\nab\r\n", b"$2\r\nab\r\n"], b"$2\r\nab\r\n"),
        (Merge.SUM, [b":2\r\n", b"-ERR shard down\r\n"], b"-ERR shard down\r\n"),
        (Merge.OK, [b"-ERR first\r\n", b"-ERR second\r\n"], b"-ERR first\r\n"),
        (Merge.SUM, [b":1\r\n", b"+OK\r\n"], None),  # not an integer: a merge error
    ],
)
def test_merges(merge: Merge, replies: list[bytes], merged: bytes | None) -> None:
    fanout = Fanout(Owner(), merge, len(replies))
    for reply in replies:
        fanout.part().done(reply)
    if merged is None:
        assert fanout.reply is not None and fanout.reply.startswith(b"-ERR devamb: cannot merge")
    else:
        assert fanout.reply == merged
