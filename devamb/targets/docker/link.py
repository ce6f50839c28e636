"""One shared connection per Docker engine: the SDK client, and a thread following its events.

A link connects in a background thread, streams container and network events, reconnects with
backoff when the engine goes away, and hands everything to its listeners on their own event loops
(`call_soon_threadsafe`). Links are shared per DOCKER_HOST and reference-counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from typing import Any, Protocol

import docker

log = logging.getLogger("devamb.docker")
DEFAULT_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT = 60  # seconds, for ordinary API calls
CONNECT_TIMEOUT = 5  # seconds, for the first answer of an engine
RETRY_MIN, RETRY_MAX = 0.5, 5.0  # reconnect backoff, seconds


class LinkListener(Protocol):
    def docker_connected(self) -> None: ...
    def docker_lost(self, reason: str) -> None: ...
    def docker_event(self, event: dict[str, Any]) -> None: ...


def docker_host() -> str:
    """The engine address the SDK will use (`DOCKER_HOST` is honoured)."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def failure_text(exc: BaseException) -> str:
    """The useful end of an SDK/requests error chain: 'Connection refused', 'Permission denied'."""
    text = str(exc)
    match = re.search(r"\[Errno \d+\] ([^\"')\]]+)|Error\(\d+, '([^']+)'\)", text)
    if match:
        return (match.group(1) or match.group(2)).strip()
    return text


class DockerLink:
    def __init__(self, host: str) -> None:
        self.host = host
        self.client: docker.DockerClient | None = None  # for API calls; None while unreachable
        self.reason: str | None = f"connecting to the Docker engine at {host}"
        self.first_attempt = threading.Event()  # set once the first connection attempt ended
        self._listeners: dict[LinkListener, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name=f"docker-events {host}", daemon=True)

    # -- listeners -------------------------------------------------------------------------

    def add(self, listener: LinkListener, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._listeners[listener] = loop

    def discard(self, listener: LinkListener) -> int:
        with self._lock:
            self._listeners.pop(listener, None)
            return len(self._listeners)

    def _dispatch(self, method: str, *args: Any) -> None:
        with self._lock:
            listeners = list(self._listeners.items())
        for listener, loop in listeners:
            try:
                loop.call_soon_threadsafe(getattr(listener, method), *args)
            except RuntimeError:  # that loop is closed; its engine is gone
                self.discard(listener)

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # the socket may be gone already
                stream.close()
        client = self.client
        self.client = None
        if client is not None:
            client.close()

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stop.is_set():
            events_client = client = None
            try:
                events_client = docker.from_env(timeout=CONNECT_TIMEOUT)
                stream = events_client.events(
                    decode=True, filters={"type": ["container", "network"]}
                )
                client = docker.from_env(version=events_client.api.api_version, timeout=API_TIMEOUT)
            except Exception as exc:
                for made in (events_client, client):
                    if made is not None:
                        made.close()
                self._down(f"Docker engine not reachable at {self.host}: {failure_text(exc)}")
                self.first_attempt.set()
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            with self._lock:
                stopped = self._stop.is_set()
                if not stopped:
                    self._stream, self.client, self.reason = stream, client, None
            if stopped:
                stream.close()
                events_client.close()
                client.close()
                return
            self.first_attempt.set()
            delay = RETRY_MIN
            log.info("connected to the Docker engine at %s", self.host)
            self._dispatch("docker_connected")
            try:
                for event in stream:
                    if self._stop.is_set():
                        break
                    self._dispatch("docker_event", event)
            except Exception as exc:
                log.debug("docker event stream broke: %s", exc)
            finally:
                self._stream = None
                events_client.close()
            if not self._stop.is_set():
                self._down(f"lost the Docker engine at {self.host}")
                client.close()

    def _down(self, reason: str) -> None:
        announce = self.client is not None or not self.first_attempt.is_set()
        self.client, self.reason = None, reason
        if announce:
            log.warning("%s", reason)
            self._dispatch("docker_lost", reason)


_links: dict[str, DockerLink] = {}
_links_lock = threading.Lock()


def acquire(listener: LinkListener, loop: asyncio.AbstractEventLoop) -> DockerLink:
    """The shared link for the current DOCKER_HOST, with `listener` subscribed to it."""
    host = docker_host()
    with _links_lock:
        link = _links.get(host)
        if link is None:
            link = _links[host] = DockerLink(host)
            link.start()
        link.add(listener, loop)
    return link


def release(link: DockerLink, listener: LinkListener) -> None:
    """Unsubscribe; the last listener out stops the link's thread."""
    with _links_lock:
        if link.discard(listener) == 0 and _links.get(link.host) is link:
            del _links[link.host]
            link.stop()
