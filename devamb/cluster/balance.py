"""Choosing an endpoint among the routable ones: round_robin, least_requests, random, hash.

A balancer sees only the endpoints that may take traffic now (health and ejection have already
filtered them) and, for HTTP, the request (for `hash`). `hash` keeps a ketama ring over every
endpoint and drops the unroutable ones from it, so a key moves only when its own endpoint leaves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from devamb.cluster.endpoint import Endpoint
from devamb.cluster.hashring import HashRing
from devamb.cluster.request_key import (
    KeyedRequest,
    RequestKey,
    parse_request_key,
    sources_for,
)
from devamb.profile.reader import Node

POLICIES = ("round_robin", "least_requests", "random", "hash")
TCP_POLICIES = ("round_robin", "random")  # a TCP target sees neither requests nor their end
H2_POLICIES = ("round_robin", "random", "hash")  # an HTTP/2 call's head is seen, not its end


@dataclass(frozen=True)
class BalanceSpec:
    policy: str = "round_robin"
    hash_on: RequestKey | None = None  # for `hash`


class Balancer(Protocol):
    def pick(self, candidates: Sequence[Endpoint], request: KeyedRequest | None) -> Endpoint:
        """One of `candidates` (never empty)."""
        ...


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[Endpoint], request: KeyedRequest | None) -> Endpoint:
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]


class LeastRequests:
    """The endpoint with the fewest exchanges in flight; ties go round the list in turn."""

    def __init__(self) -> None:
        self._start = 0

    def pick(self, candidates: Sequence[Endpoint], request: KeyedRequest | None) -> Endpoint:
        count = len(candidates)
        start = self._start % count
        self._start = start + 1
        best = candidates[start]
        for i in range(1, count):
            endpoint = candidates[(start + i) % count]
            if endpoint.in_flight < best.in_flight:
                best = endpoint
        return best


class Random:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def pick(self, candidates: Sequence[Endpoint], request: KeyedRequest | None) -> Endpoint:
        return candidates[self.rng.randrange(len(candidates))]


class Hash:
    """Consistent hashing of a request key; requests without the key go round robin."""

    def __init__(self, hash_on: RequestKey) -> None:
        self.hash_on = hash_on
        self._fallback = RoundRobin()
        self._rings: dict[frozenset[str], HashRing] = {}  # by the set of routable endpoint keys
        self._last: tuple[Sequence[Endpoint], HashRing, dict[str, Endpoint]] | None = None

    def _ring(self, candidates: Sequence[Endpoint]) -> tuple[HashRing, dict[str, Endpoint]]:
        last = self._last
        if last is not None and last[0] is candidates:  # a target's routable tuple is cached
            return last[1], last[2]
        names = frozenset(e.key for e in candidates)
        ring = self._rings.get(names)
        if ring is None:
            if len(self._rings) > 64:  # endpoints came and went a lot: start afresh
                self._rings.clear()
            ring = self._rings[names] = HashRing(sorted(names))
        by_key = {e.key: e for e in candidates}
        self._last = (candidates, ring, by_key)
        return ring, by_key

    def pick(self, candidates: Sequence[Endpoint], request: KeyedRequest | None) -> Endpoint:
        key = self.hash_on.of(request) if request is not None else None
        if key is None:
            return self._fallback.pick(candidates, request)
        return self.owner(key, candidates)

    def owner(self, key: str, candidates: Sequence[Endpoint]) -> Endpoint:
        ring, by_key = self._ring(candidates)
        return by_key[ring.node_for(key)]


def make_balancer(spec: BalanceSpec, rng: random.Random | None = None) -> Balancer:
    if spec.policy == "least_requests":
        return LeastRequests()
    if spec.policy == "random":
        return Random(rng)
    if spec.policy == "hash":
        assert spec.hash_on is not None
        return Hash(spec.hash_on)
    return RoundRobin()


def parse_balance(node: Node, protocol: str) -> BalanceSpec | None:
    """`balance:` and `hash_on:` of a target mapping `node` (both optional); both are checked
    even when one is wrong, so that all problems come out at once."""
    policies = {"http": POLICIES, "http2": H2_POLICIES, "grpc": H2_POLICIES}.get(
        protocol, TCP_POLICIES)
    policy: str | None = "round_robin"
    if node.has("balance"):
        child = node.child("balance")
        if protocol != "http" and child.value in POLICIES and child.value not in policies:
            needs = "HTTP requests" if protocol == "tcp" else "the end of each exchange"
            child.problem(
                f"{child.value!r} needs {needs}; a {protocol} pool balances with "
                f"{' or '.join(policies)}"
            )
            policy = None
        else:
            policy = child.one_of(policies)
    hash_on = None
    if node.has("hash_on"):
        if policy is not None and policy != "hash":
            node.child("hash_on").problem("hash_on applies to 'balance: hash' only")
            return None
        hash_on = parse_request_key(node.child("hash_on"), sources_for(protocol))
        if hash_on is None:
            return None
    elif policy == "hash":
        node.child("balance").problem(
            "'balance: hash' needs hash_on: header:NAME, cookie:NAME, client_ip or path"
        )
        return None
    return None if policy is None else BalanceSpec(policy, hash_on)
