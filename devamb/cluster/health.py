"""Active health checks: an HTTP GET (http services) or a TCP connect (tcp services) per endpoint.

`health: {path, interval, timeout, healthy: 2, unhealthy: 3}`. An endpoint starts `unknown`
(routable); its first check decides at once, after that `unhealthy` failures in a row take it
out and `healthy` passes in a row bring it back. A check that answers 2xx or 3xx, its whole
body as its framing says (Content-Length, chunked, or up to the close), within `timeout` passes;
a body cut short fails. Checks go to the endpoint's pinned address (see `dns`), one task each.
Each check's connection attempt also tells the endpoint's `reach` what it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httptools

from devamb.cluster.endpoint import Endpoint
from devamb.profile.reader import Node
from devamb.proxy.dial import open_stream

KEYS = ("path", "interval", "timeout", "healthy", "unhealthy")
USER_AGENT = "devamb-health"
READ_SIZE = 65536


@dataclass(frozen=True)
class HealthSpec:
    path: str | None  # None: a TCP connect check
    interval: float = 5.0
    timeout: float = 1.0
    healthy: int = 2
    unhealthy: int = 3


def parse_health(node: Node, protocol: str) -> HealthSpec | None:
    """`health: {path, interval, timeout, healthy, unhealthy}`; every key present is checked,
    whatever else is wrong, so that all problems come out at once."""
    if not isinstance(node.value, dict):
        node.mapping(KEYS)  # reports what it is instead
        return None
    before = len(node.reader.problems)
    node.mapping(KEYS, required=("path",) if protocol == "http" else ())
    path = None
    if node.has("path"):
        if protocol != "http":
            node.child("path").problem(
                f"a {protocol} service checks its endpoints by connecting; 'path' applies to http"
            )
        else:
            path = node.child("path").string()
            if path is not None and not path.startswith("/"):
                node.child("path").problem(f"{path!r} must start with '/'")
    interval = _positive(node, "interval", 5.0)
    timeout = _positive(node, "timeout", 1.0)
    healthy = node.child("healthy").integer(low=1, high=100) if node.has("healthy") else 2
    unhealthy = node.child("unhealthy").integer(low=1, high=100) if node.has("unhealthy") else 3
    if len(node.reader.problems) > before:
        return None
    assert interval is not None and timeout is not None
    return HealthSpec(path, interval, timeout, healthy or 2, unhealthy or 3)


def _positive(node: Node, key: str, default: float) -> float | None:
    """The duration at `key` (or `default`); a problem when it is not more than 0."""
    if not node.has(key):
        return default
    value = node.child(key).duration()
    if value is not None and value <= 0:
        node.child(key).problem(f"{key} must be more than 0")
        return None
    return value


async def check_http(
    endpoint: Endpoint, path: str, timeout: float, ssl_context: ssl.SSLContext | None
) -> str | None:
    """None when the endpoint answers `GET path` with 2xx/3xx, its whole body (by its
    Content-Length or chunking) within `timeout`, else why not."""
    host, port = endpoint.connect_address()
    tls = ssl_context if endpoint.scheme == "https" else None
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await open_stream(
                endpoint.dial, host, port, ssl=tls, server_hostname=endpoint.host if tls else None
            )
            endpoint.reach.observe(None)
            default = endpoint.port == (443 if endpoint.scheme == "https" else 80)
            authority = endpoint.host if default else str(endpoint)
            auth = f"Authorization: {endpoint.authorization}\r\n" if endpoint.authorization else ""
            writer.write(
                f"GET {endpoint.prefix}{path} HTTP/1.1\r\nHost: {authority}\r\n{auth}"
                f"User-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            answer = await _read_response(reader)
    except TimeoutError:
        if writer is None:
            endpoint.reach.observe(TimeoutError(f"no connection within {timeout:g}s"))
        return f"no answer to GET {path} within {timeout:g}s"
    except ssl.SSLError as exc:
        if writer is None:
            endpoint.reach.observe(exc)
        return f"GET {path}: {exc}"
    except OSError as exc:
        if writer is None:
            endpoint.reach.observe(exc)
        return f"GET {path}: {_reason(exc)}"
    finally:
        if writer is not None:
            writer.close()
    if isinstance(answer, str):
        return f"GET {path}: {answer}"
    return None if 200 <= answer < 400 else f"GET {path} answered {answer}"


class _Response:
    """httptools callbacks for one health-check response: its status and whether it ended."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0  # once the (final) head is in
        self.framed = False  # Content-Length or Transfer-Encoding: it does not end with the close
        self.complete = False
        self.body = 0

    def on_message_begin(self) -> None:
        self.status, self.framed, self.body = 0, False, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.status = 0 if 100 <= status < 200 else status  # a 1xx: the real answer follows

    def on_body(self, body: bytes) -> None:
        self.body += len(body)

    def on_message_complete(self) -> None:
        self.complete = self.status != 0


async def _read_response(reader: asyncio.StreamReader) -> int | str:
    """The status of a whole response (head and body, read and dropped), or why it is not one.

    A body shorter than its framing says is a failure (a server dying mid-answer is not
    healthy); without framing the body ends with the connection (the check asks for `close`).
    """
    response = _Response()
    try:
        while not response.complete:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            response.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return "switched protocols (101)"
    except httptools.HttpParserError:
        return "not an HTTP response"
    if response.complete:
        return response.status
    if not response.status:
        return "the connection closed before a whole response head"
    if response.framed or response.status in (204, 304):
        return (
            f"the response was cut short (the connection closed after {response.body} bytes "
            "of its body)"
        )
    return response.status  # framed by the close, which came


async def check_tcp(endpoint: Endpoint, timeout: float) -> str | None:
    """None when a TCP connection to the endpoint opens within `timeout`."""
    host, port = endpoint.connect_address()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await open_stream(endpoint.dial, host, port)
    except TimeoutError:
        endpoint.reach.observe(TimeoutError(f"no connection within {timeout:g}s"))
        return f"no connection within {timeout:g}s"
    except OSError as exc:
        endpoint.reach.observe(exc)
        return f"cannot connect: {_reason(exc)}"
    endpoint.reach.observe(None)
    writer.close()
    return None


def _reason(exc: OSError) -> str:
    """'Connection refused' rather than asyncio's 'Connect call failed (...)'."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc) or type(exc).__name__


class HealthChecker:
    """Runs the checks of a target's endpoints; `on_change(endpoint)` when one flips."""

    def __init__(
        self,
        spec: HealthSpec,
        on_change: Callable[[Endpoint], None],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.spec = spec
        self.on_change = on_change
        self.ssl_context = ssl_context
        self._tasks: dict[Endpoint, asyncio.Task[None]] = {}

    def watch(self, endpoints: Iterable[Endpoint]) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in endpoints:
            if endpoint not in self._tasks:
                self._tasks[endpoint] = loop.create_task(self._run(endpoint))

    def unwatch(self, endpoints: Iterable[Endpoint]) -> None:
        for endpoint in endpoints:
            task = self._tasks.pop(endpoint, None)
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def check(self, endpoint: Endpoint) -> str | None:
        spec = self.spec
        if spec.path is None:
            return await check_tcp(endpoint, spec.timeout)
        return await check_http(endpoint, spec.path, spec.timeout, self.ssl_context)

    async def _run(self, endpoint: Endpoint) -> None:
        while True:
            self.record(endpoint, await self.check(endpoint))
            await asyncio.sleep(self.spec.interval)

    def record(self, endpoint: Endpoint, failure: str | None) -> None:
        """Count one check's outcome; flip the endpoint's health when a threshold is reached."""
        before = endpoint.health
        if failure is None:
            endpoint.health_fails = 0
            endpoint.health_passes += 1
            if before == "unknown" or (
                before == "unhealthy" and endpoint.health_passes >= self.spec.healthy
            ):
                endpoint.health = "healthy"
            if endpoint.health == "healthy":
                endpoint.health_reason = None
        else:
            endpoint.health_passes = 0
            endpoint.health_fails += 1
            endpoint.health_reason = failure
            if before == "unknown" or (
                before == "healthy" and endpoint.health_fails >= self.spec.unhealthy
            ):
                endpoint.health = "unhealthy"
        if endpoint.health != before:
            self.on_change(endpoint)
