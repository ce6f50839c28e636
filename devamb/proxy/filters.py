"""Hooks around the bytes of one exchange, for the layer above to fill (as Envoy's filters).

The proxy knows nothing of what a filter does (faults, in devamb's case: service/shaping.py).
The service puts its filters on the `FrontRequest` before the target sees it; from then on
every response written for that request, whoever writes it (a URL target relaying an upstream,
an echo or mock target, an error answer of devamb's own), passes through the response filter,
and every read of the request body through the body filter. Without filters (the usual case)
the byte path pays one `is None` check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from devamb.proxy.response import StreamResponse

Send = Callable[[bytes], Awaitable[None]]  # writes body bytes to the client, framed


class ResponseFilter(Protocol):
    """Sees a response on its way to the client (an encoder filter).

    A filter may sleep in any hook (the client waits), and may raise `CutConnection` from
    `on_data` to end the exchange there; it cuts the connection itself before raising, so that
    whoever was writing only has to stop.
    """

    async def on_head(self, response: StreamResponse) -> None:
        """The head is about to leave (its framing decided; headers may still change)."""

    async def on_data(self, data: bytes, send: Send) -> None:
        """A body chunk: pass it on with `send`, whole or in pieces, at the filter's pace."""

    async def on_end(self, send: Send) -> None:
        """The body is complete: send what was held back; the response ends on return."""


class BodyFilter(Protocol):
    """Sees the request body as the target reads it (a decoder filter)."""

    def wrap(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks as the target should get them; may pace them or raise
        `CutConnection` (having cut the connection)."""
        ...
