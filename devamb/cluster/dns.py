"""Host names in endpoint URLs, re-resolved every `dns_ttl`; the last good answer is kept.

An endpoint written with a name connects to the address its last resolution gave (`pinned`),
so a failing DNS server does not take a working endpoint down, and a changed answer moves new
connections to the new address while exchanges in flight finish on the old one. TLS still
names the host (SNI, certificate check) and the Host header stays as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

from devamb.cluster.endpoint import Endpoint
from devamb.proxy.upstream import UpstreamConnection, UpstreamPool

Resolve = Callable[[str, int], Awaitable[tuple[str, int]]]


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> tuple[str, int]:
    """The first address the system resolver gives for host:port (raises OSError)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address for {host}")
    address = infos[0][4]
    return str(address[0]), int(address[1])


class PinnedPool(UpstreamPool):
    """Keep-alive connections to one resolved address; TLS names the host it was resolved from."""

    def __init__(
        self, server_name: str, address: tuple[str, int], ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(address[0], address[1], ssl_context)
        self.server_name = server_name
        self.retired = False

    def release(self, conn: UpstreamConnection) -> None:
        if self.retired and conn.transport is not None:
            conn.transport.close()  # the address changed: do not keep connections to the old one
        else:
            super().release(conn)

    def retire(self) -> None:
        self.retired = True
        self.close()


class DnsRefresher:
    """Re-resolves the named endpoints every `ttl` seconds.

    `on_change(endpoint, old)` runs when an endpoint's address changed (`old` may be None: the
    first answer); `on_error(endpoint, reason)` when resolution failed and the last answer stays.
    """

    def __init__(
        self,
        ttl: float,
        endpoints: Callable[[], Iterable[Endpoint]],
        on_change: Callable[[Endpoint, tuple[str, int] | None], None],
        on_error: Callable[[Endpoint, str], None],
        resolver: Resolve = resolve,
    ) -> None:
        self.ttl = ttl
        self.endpoints = endpoints
        self.on_change = on_change
        self.on_error = on_error
        self.resolver = resolver
        self.failing: set[Endpoint] = set()
        self._task: asyncio.Task[None] | None = None

    def named(self) -> list[Endpoint]:
        return [e for e in self.endpoints() if not is_address(e.host)]

    async def refresh(self) -> None:
        await asyncio.gather(*(self._refresh_one(e) for e in self.named()))

    async def _refresh_one(self, endpoint: Endpoint) -> None:
        try:
            async with asyncio.timeout(max(1.0, min(self.ttl, 10.0))):
                address = await self.resolver(endpoint.host, endpoint.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            if endpoint not in self.failing:
                self.failing.add(endpoint)
                self.on_error(endpoint, reason)
            return
        self.failing.discard(endpoint)
        old = endpoint.address
        if address != old:
            endpoint.address = address
            self.on_change(endpoint, old)

    def start(self) -> None:
        if self.named() and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            await self.refresh()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
