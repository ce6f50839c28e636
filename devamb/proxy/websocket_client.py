"""What a target holds for WebSocket upgrades, and the test that a request is one: the relay
itself (websocket.py, its frame recorder and shapers) is imported on the first upgrade."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devamb.proxy.dial import Dial
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.websocket import _Session


class WebSocketClient:
    """What a target opens WebSockets with: the TLS context for `https` upstreams, and the
    sessions in flight, so that closing the target ends them."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, dial: Dial | None = None) -> None:
        self._ssl = ssl_context
        self.dial = dial  # None: loop.create_connection (see devamb.proxy.dial)
        self._sessions: set[_Session] = set()

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made when first needed: loading the CA store is slow
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """End the sessions still open (each closes its client's connection in turn)."""
        for session in list(self._sessions):
            session.close()
        self._sessions.clear()


def is_websocket(request: FrontRequest) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"
