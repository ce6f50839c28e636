"""Tailing container logs as lines, for a logs view; one reader thread per container.

The SDK's log stream blocks, so each container gets a daemon thread that hands lines to the event
loop; closing the iterator closes the streams and the threads end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import docker
import docker.errors

MAX_PENDING = 10_000  # lines waiting for a slow reader; later ones are dropped and counted


class _Tail:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.lock = threading.Lock()
        self.stopped = False
        self.streams: list[Any] = []
        self.dropped = 0

    def put(self, line: str | None) -> None:
        if line is not None and self.queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line)

    def pump(
        self, client: docker.DockerClient, cid: str, prefix: str, tail: int, follow: bool
    ) -> None:
        try:
            stream = client.api.logs(cid, stream=True, follow=follow, tail=tail)
        except docker.errors.DockerException as exc:
            self.put(f"{prefix}cannot read logs: {exc}")
            self.put(None)
            return
        with self.lock:
            if self.stopped:
                stream.close()
                return
            self.streams.append(stream)
        rest = b""
        try:
            for chunk in stream:
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    self.put(prefix + line.decode(errors="replace").rstrip("\r"))
        except Exception as exc:  # the engine went away mid-stream
            self.put(f"{prefix}log stream ended: {exc}")
        if rest:
            self.put(prefix + rest.decode(errors="replace"))
        self.put(None)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            streams, self.streams = self.streams, []
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()


async def tail_logs(
    client: docker.DockerClient,
    containers: Sequence[tuple[str, str]],
    *,
    tail: int = 200,
    follow: bool = True,
) -> AsyncIterator[str]:
    """The last `tail` lines of each (id, name) container, then new ones while `follow`.

    With several containers each line starts with `NAME | `. Ends when every stream ended.
    """
    state = _Tail(asyncio.get_running_loop())
    several = len(containers) > 1
    threads = [
        threading.Thread(
            target=state.pump,
            args=(client, cid, f"{name} | " if several else "", tail, follow),
            name=f"docker-logs {name}",
            daemon=True,
        )
        for cid, name in containers
    ]
    for thread in threads:
        thread.start()
    ended = 0
    try:
        while ended < len(threads):
            line = await state.queue.get()
            if line is None:
                ended += 1
                continue
            yield line
    finally:
        state.stop()
    if state.dropped:
        yield f"({state.dropped} lines dropped: the reader was too slow)"
