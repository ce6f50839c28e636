"""The engine's bastions, by name: one `Bastion` (one SSH connection) each, kept across
profile reloads while its settings are unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SSH client: imported by a profile that has bastions (issue 22: RSS)
    from devamb.tunnel.bastion import Bastion
    from devamb.tunnel.spec import BastionSpec


class Tunnels:
    def __init__(self, notify: Callable[[str, str], None] | None = None) -> None:
        self._notify = notify
        self._bastions: dict[str, Bastion] = {}

    def get(self, name: str) -> Bastion | None:
        return self._bastions.get(name)

    def __iter__(self) -> Any:
        return iter(self._bastions.values())

    async def update(self, specs: Mapping[str, BastionSpec]) -> None:
        """Keep bastions whose settings (and hops') are the same, reset changed ones (the same
        object: targets keep their dialers), close removed ones."""
        fresh: dict[str, Bastion] = {}
        for name, spec in specs.items():
            hops = _hops(spec, specs)
            old = self._bastions.get(name)
            if old is None:
                from devamb.tunnel.bastion import Bastion

                fresh[name] = Bastion(spec, hops, self._notify)
                continue
            if old.spec != spec or old.hops != hops:
                await old.reset(spec, hops)
            fresh[name] = old
        gone = [b for n, b in self._bastions.items() if fresh.get(n) is not b]
        self._bastions = fresh
        for bastion in gone:
            await bastion.close()

    async def close(self) -> None:
        for bastion in self._bastions.values():
            await bastion.close()
        self._bastions = {}

    def status(self) -> list[dict[str, Any]]:
        return [b.status() for b in self._bastions.values()]


def _hops(spec: BastionSpec, specs: Mapping[str, BastionSpec]) -> list[BastionSpec]:
    """The bastions to pass through before `spec`, in order: each hop's own jumps first."""
    chain: list[BastionSpec] = []
    seen = {spec.name}

    def add(names: tuple[str, ...]) -> None:
        for name in names:
            hop = specs.get(name)
            if hop is None or name in seen:
                continue
            seen.add(name)
            add(hop.jump)
            chain.append(hop)

    add(spec.jump)
    return chain
