"""A timeout for the current task, for the hot path.

`asyncio.timeout()` does the same job, but on Python 3.11 it costs several microseconds per use
(its state is an Enum, and enum attribute access is slow there): measurable at one per proxied
exchange. Same semantics: the task is cancelled when the time is up, and that cancellation (only
that one) comes out of the block as TimeoutError.

`rearm()` moves the deadline: an idle timer re-armed on every chunk of a streamed body costs a
float store, not a new timer (the timer, when it fires early, goes back to sleep until the
latest deadline).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType

from devamb.proxy.errors import UpstreamFailed


class Deadline:
    __slots__ = ("_cancelling", "_expires", "_fired", "_handle", "_loop", "_task")

    def __init__(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None, "Deadline used outside a task"
        self._task = task
        self._cancelling = task.cancelling()  # cancellations already asked for by others
        self._fired = False
        self._loop = loop = asyncio.get_running_loop()
        self._expires = loop.time() + seconds
        self._handle = loop.call_at(self._expires, self._fire)

    def rearm(self, seconds: float) -> None:
        """The time is up `seconds` from now (sooner or later than before)."""
        if self._fired:
            return
        self._expires = expires = self._loop.time() + seconds
        if expires < self._handle.when():
            self._handle.cancel()
            self._handle = self._loop.call_at(expires, self._fire)

    def _fire(self) -> None:
        if self._expires > self._handle.when():  # re-armed later meanwhile: sleep on
            self._handle = self._loop.call_at(self._expires, self._fire)
            return
        self._fired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        fired = self._fired and self._task.uncancel() <= self._cancelling
        if fired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


class ClientStalled(UpstreamFailed):
    """The client stopped sending its request body for the idle timeout: 408, as nginx's
    client_body_timeout and Envoy's stream idle timeout answer. Not the upstream's fault, so
    it counts against no endpoint and is never retried."""

    def __init__(self, idle: float) -> None:
        super().__init__(
            408, "request-timeout", f"the client sent no request body bytes for {idle:g}s"
        )


class IdleBody:
    """A request body on its way upstream, re-arming `deadline` to `idle` seconds whenever a
    byte moves either way: a chunk from the client, or the upstream taking the last one.
    When the time is up, `on_client` says which side stalled."""

    __slots__ = ("deadline", "done", "idle", "on_client", "source")

    def __init__(self, source: AsyncIterable[bytes], deadline: Deadline, idle: float) -> None:
        self.source = source
        self.deadline = deadline
        self.idle = idle
        self.on_client = False  # waiting for the client's next chunk (else for the upstream)
        self.done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        source = aiter(self.source)
        deadline, idle = self.deadline, self.idle
        while True:
            deadline.rearm(idle)  # the upstream took the last chunk (or this is the first)
            self.on_client = True
            try:
                chunk = await anext(source)
            except StopAsyncIteration:
                break
            self.on_client = False
            deadline.rearm(idle)
            yield chunk
        self.on_client = False
        self.done = True


async def read_within(body: AsyncIterable[bytes], idle: float) -> bytes:
    """A whole request body, read with no pause longer than `idle` (else ClientStalled)."""
    chunks: list[bytes] = []
    try:
        with Deadline(idle) as deadline:
            async for chunk in body:
                chunks.append(chunk)
                deadline.rearm(idle)
    except TimeoutError:
        raise ClientStalled(idle) from None
    return b"".join(chunks)
