from __future__ import annotations

from collections import Counter

from devamb.cluster.hashring import HashRing


def test_keys_spread_over_nodes_and_are_stable() -> None:
    ring = HashRing(["a:1", "b:1", "c:1"])
    owners = Counter(ring.node_for(f"key{i}") for i in range(30_000))
    assert set(owners) == {"a:1", "b:1", "c:1"}
    assert all(8_000 < n < 12_000 for n in owners.values())
    assert HashRing(["c:1", "a:1", "b:1"]).node_for("key42") == ring.node_for("key42")


def test_adding_a_node_moves_few_keys() -> None:
    before = HashRing(["a", "b", "c", "d"])
    after = HashRing(["a", "b", "c", "d", "e"])
    keys = [f"user:{i}" for i in range(20_000)]
    moved = sum(before.node_for(k) != after.node_for(k) for k in keys)
    assert moved < 0.3 * len(keys)  # ideal 1/5; a modulo scheme would move ~80 %
    assert all(after.node_for(k) == "e" for k in keys if before.node_for(k) != after.node_for(k))


def test_without_excludes_nodes() -> None:
    ring = HashRing(["a", "b"])
    rest = ring.without({"a"})
    assert rest is not None and {rest.node_for(str(i)) for i in range(100)} == {"b"}
    assert ring.without({"a", "b"}) is None
