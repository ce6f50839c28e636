"""The sharded target's ring picks what `HashRing` picks (twemproxy's ketama), by key and in
bulk, with a shard ejected too."""

from __future__ import annotations

import random

import pytest

from devamb.cluster.hashring import HashRing
from devamb.targets.shards import ring as ring_module
from devamb.targets.shards.ring import ShardRing


def _ring(names: list[str]) -> ShardRing[str]:
    return ShardRing({name: name for name in names}, eject_after=1, eject_for=60,
                     notify=lambda _level, _text: None, describe=str)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_pick_and_pick_all_agree_with_the_hash_ring(count: int) -> None:
    names = [f"s{i}" for i in range(count)]
    ring, reference = _ring(names), HashRing(names)
    rng = random.Random(count)
    keys = [b"key:%d" % rng.randrange(10**9) for _ in range(20_000)]  # (some in mixed spans)
    expected = [reference.node_for(key) for key in keys]
    assert [ring.pick(key) for key in keys] == expected
    for size in (1, 2, 16, 257, len(keys)):
        picked = [i for at in range(0, len(keys), size) for i in ring.pick_all(keys[at:at + size])]
        assert [ring.listed[i] for i in picked] == expected, size


def test_pick_skips_an_ejected_shard() -> None:
    names = ["a", "b", "c"]
    ring = _ring(names)
    ring.failed("b", "down")
    reference = HashRing(names).without({"b"})
    assert reference is not None
    keys = [b"k%d" % i for i in range(5000)]
    assert [ring.pick(key) for key in keys] == [reference.node_for(key) for key in keys]


def test_pick_all_reads_the_spans_one_by_one_on_a_big_endian_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["a", "b"]
    ring, reference = _ring(names), HashRing(names)
    keys = [b"k%d" % i for i in range(3000)]
    monkeypatch.setattr(ring_module, "_LITTLE", False)
    assert [ring.listed[i] for i in ring.pick_all(keys)] == [reference.node_for(k) for k in keys]
