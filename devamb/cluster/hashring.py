"""A ketama-style consistent hash ring (as in libketama and twemproxy).

Each node gets points on a 32-bit circle from MD5 digests of "NAME-i" (four points per digest);
a key belongs to the first point at or after its own hash. Adding or removing one node of N
moves about 1/N of the keys.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence

POINTS_PER_NODE = 160  # 40 digests x 4 points, libketama's default for weight 1


def _points(name: str, count: int) -> list[int]:
    out: list[int] = []
    for i in range((count + 3) // 4):
        digest = hashlib.md5(f"{name}-{i}".encode(), usedforsecurity=False).digest()
        for j in range(4):
            out.append(int.from_bytes(digest[j * 4 : j * 4 + 4], "little"))
    return out[:count]


try:  # CPython's own MD5: half the cost per call of OpenSSL 3's, and a call is made per key
    from _md5 import md5 as _md5  # type: ignore[import-not-found]  # private, no stub
except ImportError:  # pragma: no cover
    _md5 = hashlib.md5


def key_hash(key: bytes | str) -> int:
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(_md5(data).digest()[:4], "little")


class HashRing:
    def __init__(self, nodes: Sequence[str], weights: Mapping[str, int] | None = None) -> None:
        if not nodes:
            raise ValueError("a hash ring needs at least one node")
        self.nodes = tuple(nodes)
        ring: list[tuple[int, str]] = []
        for node in nodes:
            weight = (weights or {}).get(node, 1)
            ring.extend((point, node) for point in _points(node, POINTS_PER_NODE * weight))
        ring.sort()
        self._hashes = [point for point, _ in ring]
        self._owners = [node for _, node in ring]

    def node_for(self, key: bytes | str) -> str:
        index = bisect.bisect_left(self._hashes, key_hash(key))
        return self._owners[index % len(self._owners)]

    def points(self) -> tuple[list[int], list[str]]:
        """The sorted points and the node owning each: node_for is bisect_left over them."""
        return self._hashes, self._owners

    def without(self, excluded: set[str]) -> HashRing | None:
        """The ring of the remaining nodes (for ejected endpoints), or None if none remain."""
        rest = [n for n in self.nodes if n not in excluded]
        return HashRing(rest) if rest else None
