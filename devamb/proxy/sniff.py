"""HTTP/2 on an HTTP/1.1 listener: a connection's protocol is decided before any request.

Over TLS, ALPN decides: a client that chose `h2` is an HTTP/2 connection from its first byte.
In cleartext, the first bytes do: a client sending the HTTP/2 connection preface (prior
knowledge, RFC 9113 3.3) is handed to the HTTP/2 front end; anything else to the HTTP/1.1 one,
which owns the connection from its accept (its header timeout runs while the bytes are read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from devamb.proxy.front import FrontProtocol, FrontServer

if TYPE_CHECKING:  # the HTTP/2 front end (and h2) is imported at the first HTTP/2 connection
    from devamb.proxy.h2front import H2FrontServer

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Http2Switch(asyncio.Protocol):
    """Reads a connection's first bytes, then hands it to HTTP/1.1 or HTTP/2."""

    def __init__(self, http1: FrontServer, http2: Callable[[], H2FrontServer]) -> None:
        self.http2 = http2
        self.front = FrontProtocol(http1)
        self.transport: asyncio.Transport | None = None
        self._seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:  # ALPN decided
            if tls.selected_alpn_protocol() == "h2":
                self._to_http2(b"")
            else:
                transport.set_protocol(self.front)
                self.front.connection_made(transport)
            return
        self.front.connection_made(transport)  # (its header timeout covers the sniffing)

    def data_received(self, data: bytes) -> None:
        seen = self._seen + data
        if seen[:len(PREFACE)] == PREFACE[:len(seen)]:  # the preface so far
            if len(seen) < len(PREFACE):
                self._seen = seen
                return
            self._to_http2(seen)
            return
        assert self.transport is not None
        self.transport.set_protocol(self.front)
        self.front.data_received(seen)

    def _to_http2(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.front.release()
        from devamb.proxy.h2front import H2FrontConnection

        connection = H2FrontConnection(self.http2())
        transport.set_protocol(connection)
        connection.connection_made(transport)
        if data:
            connection.data_received(data)

    # until the switch, the HTTP/1.1 side owns the connection's life
    def eof_received(self) -> bool | None:
        return self.front.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connection_lost(exc)

    def pause_writing(self) -> None:
        self.front.pause_writing()

    def resume_writing(self) -> None:
        self.front.resume_writing()
