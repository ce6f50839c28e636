"""The proxies of the Toxiproxy API: each one a devamb TCP service added to the running engine
(so it shows in the TUI and status, and its connections are recorded), its toxics the faults
of that service.

The engine's services of the profile are not proxies here: the API lists, changes and resets
only the proxies it created, and refuses a proxy named as one of them (409).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devamb.control.protocol import ControlError
from devamb.engine.assembly import parse_service
from devamb.profile.problems import ProfileError
from devamb.proxy.listen import ListenError
from devamb.service.core import Service
from devamb.service.spec import ServiceSpec
from devamb.toxiproxy.errors import (
    ApiError,
    bad_request_body,
    missing_field,
    proxy_already_exists,
    proxy_not_found,
    toxic_already_exists,
    toxic_not_found,
)
from devamb.toxiproxy.mapping import Toxic, new_toxic, updated_toxic

ORIGIN = "<toxiproxy api>"
TARGET = "upstream"  # the one target of a proxy's service


class RuntimeEngine(Protocol):
    """What the proxies need of the engine (devamb.engine.core.Engine)."""

    @property
    def services(self) -> dict[str, Service]: ...

    async def add_service(self, spec: ServiceSpec) -> Service: ...

    async def remove_service(self, name: str) -> None: ...

    async def set_listening(self, name: str, listening: bool) -> None: ...

    async def add_fault(self, service: str, fault: dict[str, Any]) -> dict[str, Any]: ...

    async def remove_fault(self, service: str, name: str) -> None: ...

    async def clear_faults(self, service: str | None = None) -> None: ...


@dataclass
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: dict[str, Toxic] = field(default_factory=dict)
    service: Service | None = field(default=None, repr=False, compare=False)

    def toxic_list(self) -> list[Toxic]:
        """Upstream toxics first, then downstream ones, each in the order they were added."""
        return [t for s in ("upstream", "downstream") for t in self.toxics.values()
                if t.stream == s]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxic_list()]}


def listen_address(listen: str) -> str:
    """Toxiproxy's listen forms as devamb's: "" (any port) and ":PORT" become loopback, and
    `localhost` 127.0.0.1 (as Go resolves it: one address, the one the proxy then shows)."""
    if not listen:
        return "127.0.0.1:0"
    if listen.startswith(":"):
        return "127.0.0.1" + listen
    if listen.lower().startswith("localhost:"):
        return "127.0.0.1" + listen[len("localhost"):]
    return listen


def _bound(service: Service, fallback: str) -> str:
    if service.bound is None:
        return fallback
    host, port = service.bound
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProxyTable:
    """The proxies by name; changes run one at a time."""

    def __init__(self, engine: RuntimeEngine) -> None:
        self.engine = engine
        self._proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    @property
    def proxies(self) -> dict[str, Proxy]:
        """The proxies whose service is still theirs: a service of the same name that a reload
        of the profile adds replaces the proxy (the file wins)."""
        services = self.engine.services
        for name in [n for n, p in self._proxies.items() if services.get(n) is not p.service]:
            del self._proxies[name]
        return self._proxies

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise proxy_not_found()
        return proxy

    # -- proxies ---------------------------------------------------------------------------

    async def create(self, name: str, listen: str, upstream: str, enabled: bool) -> Proxy:
        """Assumes `changing` is held."""
        if name in self.proxies or name in self.engine.services:
            raise proxy_already_exists()
        spec = self._spec(name, listen, upstream)
        try:
            service = await self.engine.add_service(spec)
        except ListenError as exc:
            raise ApiError(str(exc), 500) from None
        except ControlError as exc:
            raise ApiError(exc.message, exc.status) from None
        service.faults.live = True  # toxics act on open connections too, as in Toxiproxy
        proxy = Proxy(name, _bound(service, str(spec.listen)), upstream, True, service=service)
        self.proxies[name] = proxy
        if not enabled:
            await self._listening(proxy, False)
        return proxy

    def _spec(self, name: str, listen: str, upstream: str) -> ServiceSpec:
        data = {"listen": listen_address(listen), "protocol": "tcp", "target": TARGET,
                "targets": {TARGET: f"tcp://{upstream}"}}
        try:
            return parse_service(name, data, ORIGIN)
        except ProfileError as exc:
            why = "; ".join(f"{p.path}: {p.message}" if p.path else p.message
                            for p in exc.problems)
            raise bad_request_body(why) from None

    async def update(self, proxy: Proxy, body: Mapping[str, Any]) -> Proxy:
        """Listen, upstream and enabled from `body` (absent ones stay); a new address or
        upstream rebinds (open connections close), keeping the toxics."""
        listen = _string(body, "listen", proxy.listen)
        upstream = _string(body, "upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise bad_request_body("json: cannot unmarshal enabled: expected a boolean")
        if self.differs(proxy, listen, upstream):
            self._spec(proxy.name, listen, upstream)  # checked before the old one goes
            await self.engine.remove_service(proxy.name)
            self._proxies.pop(proxy.name, None)
            try:
                proxy = await self._recreate(proxy, listen, upstream)
            except ApiError:  # the new address cannot be bound: the proxy stays as it was
                await self._recreate(proxy, proxy.listen, proxy.upstream)
                raise
        if enabled != proxy.enabled:
            await self._listening(proxy, enabled)
        return proxy

    async def _recreate(self, old: Proxy, listen: str, upstream: str) -> Proxy:
        proxy = await self.create(old.name, listen, upstream, old.enabled)
        for toxic in old.toxic_list():
            await self._run(proxy, toxic)
            proxy.toxics[toxic.name] = toxic
        return proxy

    async def _listening(self, proxy: Proxy, enabled: bool) -> None:
        try:
            await self.engine.set_listening(proxy.name, enabled)
        except ListenError as exc:  # its port was taken while it was disabled
            raise ApiError(str(exc), 500) from None
        proxy.enabled = enabled

    def differs(self, proxy: Proxy, listen: str, upstream: str) -> bool:
        return listen_address(listen) != proxy.listen or upstream != proxy.upstream

    async def delete(self, name: str) -> None:
        self.get(name)
        await self.engine.remove_service(name)
        self._proxies.pop(name, None)

    async def reset(self) -> None:
        """Every proxy enabled again, every toxic removed."""
        for proxy in self.proxies.values():
            if not proxy.enabled:
                await self._listening(proxy, True)
            proxy.toxics.clear()
            await self.engine.clear_faults(proxy.name)

    async def populate(self, body: object) -> tuple[list[Proxy], ApiError | None]:
        """Create the proxies of a list, replacing those whose address or upstream differ and
        keeping those that are the same; the list is checked whole before any change."""
        if not isinstance(body, list):
            raise bad_request_body("json: cannot unmarshal object into Go value of type "
                                   "[]struct")
        wanted: list[tuple[str, str, str, bool]] = []
        for i, item in enumerate(body, 1):
            if not isinstance(item, dict):
                raise bad_request_body(f"json: cannot unmarshal proxy {i}: expected an object")
            name, upstream = item.get("name"), item.get("upstream")
            if not isinstance(name, str) or not name:
                raise missing_field(f"name at proxy {i}")
            if not isinstance(upstream, str) or not upstream:
                raise missing_field(f"upstream at proxy {i}")
            enabled = item.get("enabled", True)
            wanted.append((name, _string(item, "listen", ""), upstream,
                           enabled if isinstance(enabled, bool) else True))
        done: list[Proxy] = []
        for name, listen, upstream, enabled in wanted:
            try:
                existing = self.proxies.get(name)
                if existing is not None:
                    if not self.differs(existing, listen, upstream):
                        done.append(existing)
                        continue
                    await self.delete(name)
                done.append(await self.create(name, listen, upstream, enabled))
            except ApiError as exc:
                return done, exc
        return done, None

    # -- toxics ----------------------------------------------------------------------------

    async def add_toxic(self, proxy: Proxy, body: object) -> Toxic:
        toxic = new_toxic(body)
        if toxic.name in proxy.toxics:
            raise toxic_already_exists()
        await self._run(proxy, toxic)
        proxy.toxics[toxic.name] = toxic
        return toxic

    def toxic(self, proxy: Proxy, name: str) -> Toxic:
        toxic = proxy.toxics.get(name)
        if toxic is None:
            raise toxic_not_found()
        return toxic

    async def update_toxic(self, proxy: Proxy, name: str, body: object) -> Toxic:
        toxic = updated_toxic(self.toxic(proxy, name), body)
        await self._run(proxy, toxic)  # replaces the fault of the same name
        proxy.toxics[name] = toxic
        return toxic

    async def remove_toxic(self, proxy: Proxy, name: str) -> None:
        self.toxic(proxy, name)
        del proxy.toxics[name]
        with contextlib.suppress(ControlError):  # gone already (removed in the TUI, say)
            await self.engine.remove_fault(proxy.name, name)

    async def _run(self, proxy: Proxy, toxic: Toxic) -> None:
        fault = toxic.fault()
        if fault is None:
            return
        try:
            await self.engine.add_fault(proxy.name, fault)
        except ControlError as exc:
            raise bad_request_body(exc.message) from None


def _string(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise bad_request_body(f"json: cannot unmarshal {type(value).__name__} into Go struct "
                               f"field Proxy.{key} of type string")
    return value
