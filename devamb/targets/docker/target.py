"""Docker targets at runtime: route to the matching running containers, follow Docker events to
keep up, and start the container of an `image:` target (on switch, or with the engine).
The profile side (`docker:` keys, DockerTargetSpec, `parse`) is in `spec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import docker
from yarl import URL

from devamb.control.protocol import Conflict
from devamb.profile.schema import TargetSpec
from devamb.proxy.forward import forward_http
from devamb.proxy.upstream import UpstreamPool
from devamb.proxy.websocket_client import WebSocketClient
from devamb.targets.base import H2Destination, Target, TargetContext, TargetUnavailable
from devamb.targets.docker import link as docker_link
from devamb.targets.docker.containers import ContainerView, container_view
from devamb.targets.docker.endpoints import Endpoint, RoundRobin
from devamb.targets.docker.launcher import (
    PROBE_INTERVAL,
    LaunchFailed,
    answers,
    claim,
    config_digest,
    container_name,
    launch,
    owner_labels,
    remove_owned,
    unclaim,
)
from devamb.targets.docker.logs import tail_logs
from devamb.targets.docker.spec import DockerTargetSpec

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

FIRST_RESOLVE_WAIT = 3.0  # seconds `start()` waits for the engine's first answer
ADMIT_AFTER = 10.0  # seconds after which a running container is routed to even if silent


class DockerTarget(Target):
    """Routes to the matching running containers in turn; follows Docker events to keep up."""

    spec: DockerTargetSpec

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, DockerTargetSpec)
        self._link: docker_link.DockerLink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[tuple[str, int], UpstreamPool] = {}  # keep-alive, one per endpoint
        self._websockets = WebSocketClient()
        self._endpoints = RoundRobin()
        self._containers: tuple[ContainerView, ...] = ()
        self._resolved = False  # at least one resolution happened since (re)connecting
        self._answered: set[Endpoint] = set()  # endpoints whose port answered a probe
        self._probes: dict[Endpoint, asyncio.Task[None]] = {}  # new endpoints being probed
        self._starting = True  # quiet while start() runs: the first picture is no news
        self._wake = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._launch: asyncio.Task[None] | None = None
        self._resolve_lock = asyncio.Lock()
        self._announce_connect = False  # say so when an engine that was away comes back
        self._launched = False  # a start was attempted (on-switch targets start on first use)
        self._launch_error: str | None = None
        self._closing = False
        self._cancel_launch = threading.Event()  # tells a start still running in a thread

    @property
    def _prefix(self) -> str:
        return f"{self.context.service}/{self.name}: "

    # -- status ----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._link is None or self._link.client is None:
            return "unavailable"
        if self._launch is not None and not self._launch.done():
            return "starting"
        if self._endpoints.items:
            return "ready"
        if self._probes:
            return "starting"
        if self._launch_error:
            return "failed"
        return "stopped" if self._resolved else "connecting"

    def reason(self) -> str | None:
        """Why nothing can be routed to, or None when something can."""
        if self._link is None:
            return "not started"
        if self._link.client is None:
            return self._link.reason
        if self._launch is not None and not self._launch.done():
            return f"{self.spec.selector.describe()} is starting"
        if self._endpoints.items:
            return None
        if self._probes:
            what = self.spec.selector.describe()
            return f"{what} is running; waiting for port {self.spec.port} to answer"
        if self._launch_error:
            return self._launch_error
        return self._nothing_running()

    def _nothing_running(self) -> str:
        selector = self.spec.selector
        what = selector.describe()
        containers = self._containers
        if not containers:
            if self.spec.run is not None:
                return f"{what} is not running (it starts when switched to)"
            return f"no {what}" if selector.ref else f"no container with {what}"
        states = [f"{c.state}, {c.note}" if c.note else c.state for c in containers]
        if selector.ref or self.spec.run is not None:
            return f"{what} is {states[0]}"
        pairs = zip(containers, states, strict=True)
        listed = ", ".join(f"{c.name} is {state}" for c, state in pairs)
        return f"no running container for {what} ({listed})"

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "docker_host": self._link.host if self._link else docker_link.docker_host(),
            "match": self.spec.selector.describe(),
            "port": self.spec.port,
            "containers": [c.to_json() for c in self._containers],
            "endpoints": [str(e) for e in self._endpoints.items],
            "reason": self.reason(),
        }
        if self.spec.run is not None:
            out["image"] = self.spec.run.image
            out["run"] = self.spec.run_mode
        return out

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.spec.run is not None:
            claim(self._owner_labels(), self)
        self._link = docker_link.acquire(self, self._loop)
        await asyncio.to_thread(self._link.first_attempt.wait, FIRST_RESOLVE_WAIT)
        if self._link.client is not None:
            await self._resolve()
            if self._probes:
                await asyncio.wait(list(self._probes.values()), timeout=FIRST_RESOLVE_WAIT)
        else:
            self._announce_connect = True
        self._starting = False
        self._follower = self._loop.create_task(self._follow())
        if self.spec.run is not None and self.spec.run_mode == "on-up":
            self._launch_task()

    async def close(self) -> None:
        self._closing = True
        self._cancel_launch.set()
        for task in (self._follower, self._launch, *self._probes.values()):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        await self._websockets.close()
        link, self._link = self._link, None
        if link is None:
            return
        client = link.client
        if self.spec.run is not None:
            labels = self._owner_labels()
            keep = unclaim(labels, self)  # a reloaded twin of this target may be using it
        if self.spec.run is not None and client is not None:
            with contextlib.suppress(docker.errors.DockerException):
                removed = await asyncio.to_thread(remove_owned, client, labels, keep)
                if removed:
                    self.notify("info", f"{self._prefix}removed container {', '.join(removed)}")
        docker_link.release(link, self)

    async def activate(self) -> None:
        """Before a switch here: start the container of an image target, or re-resolve."""
        if self._link is None or self._link.client is None:
            if self.spec.run is not None:
                raise Conflict(f"cannot start {self.spec.selector.describe()}: {self.reason()}")
            return
        if self.spec.run is None:
            await self._resolve()
            return
        try:
            await self._ensure_running()
        except LaunchFailed as exc:
            raise Conflict(f"{self._prefix}{exc}") from None

    # -- routing ---------------------------------------------------------------------------

    async def _endpoint(self) -> Endpoint:
        launching = self._launch is not None and not self._launch.done()
        first_use = self.spec.run is not None and not self._launched and not self._endpoints.items
        if (launching or first_use) and self._link is not None and self._link.client is not None:
            with contextlib.suppress(LaunchFailed):
                await self._ensure_running()  # e.g. an on-switch target active from the start
        endpoint = self._endpoints.pick()
        if endpoint is None:
            raise TargetUnavailable(self.reason() or "no endpoint")
        return endpoint

    async def handle_http(self, request: FrontRequest, exchange: Exchange) -> StreamResponse:
        endpoint = await self._endpoint()
        key = (endpoint.host, endpoint.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = UpstreamPool(endpoint.host, endpoint.port, None)
        return await forward_http(
            pool,
            request,
            URL(f"http://{endpoint}{request.raw_path}", encoded=True),
            exchange,
            extra_headers={},
            keep_host=self.context.keep_host,
            timeout=self.context.timeout,
            websockets=self._websockets,
        )

    def _drop_pools(self) -> None:
        """Close the keep-alive connections of endpoints that went away."""
        live = {(e.host, e.port) for e in self._endpoints.items}
        for key in [k for k in self._pools if k not in live]:
            self._pools.pop(key).close()

    async def h2_destination(self, headers: H2Headers) -> H2Destination:
        """The container's published address, spoken to over h2c."""
        endpoint = await self._endpoint()
        return H2Destination(endpoint.host, endpoint.port, str(endpoint))

    async def tcp_address(self) -> tuple[str, int]:
        endpoint = await self._endpoint()
        return endpoint.host, endpoint.port

    async def logs(self, tail: int = 200, follow: bool = True) -> AsyncIterator[str]:
        """The matching containers' log lines (last `tail`, then new ones while `follow`)."""
        client = self._link.client if self._link else None
        if client is None or not self._containers:
            raise TargetUnavailable(self.reason() or "no container")
        containers = [(c.id, c.name) for c in self._containers]
        async for line in tail_logs(client, containers, tail=tail, follow=follow):
            yield line

    # -- following Docker --------------------------------------------------------------------

    def docker_connected(self) -> None:
        if self._closing:
            return
        if self._announce_connect and self._link is not None:
            self._announce_connect = False
            self.notify("info", f"{self._prefix}Docker engine at {self._link.host} is reachable")
        self._wake.set()

    def docker_lost(self, reason: str) -> None:
        if self._closing:
            return
        self._resolved = False  # what follows is no change to announce, but the loss itself
        self._apply(())
        self._resolved = False
        self._announce_connect = True
        self.notify("warning", f"{self._prefix}{reason}; requests answer 503")

    def docker_event(self, event: dict[str, Any]) -> None:
        known = [c.id for c in self._containers]
        if not self._closing and self.spec.selector.concerns(event, known):
            self._wake.set()

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._resolve()

    async def _resolve(self) -> None:
        """Look the containers up again and announce what changed."""
        link = self._link
        client = link.client if link else None
        if client is None:
            return
        port = self.spec.port
        selector = self.spec.selector
        async with self._resolve_lock:
            try:
                found = await asyncio.to_thread(
                    lambda: [container_view(c.attrs, port) for c in selector.find(client)]
                )
            except docker.errors.DockerException as exc:
                self.notify("warning", f"{self._prefix}cannot list containers: {exc}")
                return
            self._apply(found)

    def _apply(self, found: Sequence[ContainerView]) -> None:
        """Route to the running containers whose port answered; probe the ones that are new."""
        first = not self._resolved
        before = self._endpoints.items
        self._containers = tuple(found)
        self._resolved = True
        candidates = [c.endpoint for c in found if c.endpoint is not None]
        self._answered.intersection_update(candidates)
        for endpoint in [e for e in self._probes if e not in candidates]:
            self._probes.pop(endpoint).cancel()
        for endpoint in candidates:
            if endpoint not in self._answered and endpoint not in self._probes:
                assert self._loop is not None
                self._probes[endpoint] = self._loop.create_task(self._probe(endpoint))
        changed = self._endpoints.replace(e for e in candidates if e in self._answered)
        if changed:
            self._drop_pools()
        launching = self._launch is not None and not self._launch.done()
        if changed and not first and not launching and not self._starting:
            self._announce(before)  # a container start announces its own outcome

    async def _probe(self, endpoint: Endpoint) -> None:
        """Admit a new endpoint once its port answers (or after ADMIT_AFTER, to show errors)."""
        deadline = time.monotonic() + ADMIT_AFTER
        while not await answers(endpoint) and time.monotonic() < deadline:
            await asyncio.sleep(PROBE_INTERVAL)
        self._probes.pop(endpoint, None)
        self._answered.add(endpoint)
        self._apply(self._containers)

    def _announce(self, before: tuple[Endpoint, ...]) -> None:
        now = self._endpoints.items
        if not now:
            self.notify("warning", f"{self._prefix}{self._nothing_running()}; requests answer 503")
            return
        names = {c.id: c.name for c in self._containers}
        listed = ", ".join(f"{names.get(e.origin, e.origin[:12])} at {e}" for e in now)
        count = f"{len(now)} containers: " if len(now) > 1 else ""
        was = ", ".join(str(e) for e in before) or "nothing running"
        self.notify("info", f"{self._prefix}routing to {count}{listed} (was {was})")

    # -- containers devamb runs ------------------------------------------------------------------

    def _owner_labels(self) -> dict[str, str]:
        spec = self.spec
        assert spec.run is not None
        return owner_labels(
            spec.profile, spec.project, self.context.service, self.name, config_digest(spec.run)
        )

    def _launch_task(self) -> asyncio.Task[None]:
        """The running start of this image target's container, or a new one."""
        if self._launch is None or self._launch.done():
            assert self._loop is not None
            self._launch = self._loop.create_task(self._launch_once())
            self._launch.add_done_callback(_retrieve)
        return self._launch

    async def _ensure_running(self) -> None:
        """Start the container unless one answers already; raises LaunchFailed."""
        await asyncio.shield(self._launch_task())

    async def _launch_once(self) -> None:
        await self._resolve()
        if self._endpoints.items:
            return
        self._launched = True
        self._launch_error = None
        try:
            await self._launch_container()
        except LaunchFailed as exc:
            self._launch_error = str(exc)
            self.notify("error", f"{self._prefix}{exc}")
            raise
        except docker.errors.DockerException as exc:
            self._launch_error = f"Docker engine error: {exc}"
            self.notify("error", f"{self._prefix}{self._launch_error}")
            raise LaunchFailed(self._launch_error) from None

    async def _launch_container(self) -> None:
        run = self.spec.run
        link = self._link
        assert run is not None and link is not None
        client = link.client
        if client is None:
            raise LaunchFailed(link.reason or "Docker engine not reachable")
        name = container_name(self.spec.project, self.context.service, self.name)
        self.notify("info", f"{self._prefix}starting container {name} from {run.image}")
        started = time.monotonic()
        endpoint = await launch(client, run, name, self._owner_labels(), self._cancel_launch)
        self._answered.add(endpoint)
        await self._resolve()
        took = time.monotonic() - started
        where = ", ".join(str(e) for e in self._endpoints.items) or "?"
        self.notify("info", f"{self._prefix}container {name} ready at {where} ({took:.1f}s)")


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a background start's failure as seen: it was announced with a notice already."""
    if not task.cancelled():
        task.exception()
