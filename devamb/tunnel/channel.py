"""An SSH direct-tcpip channel seen as an asyncio transport.

The proxy's protocols (HTTP/1 and HTTP/2 upstreams, the TCP relay, websockets, shard links)
are asyncio protocols written for `loop.create_connection`; this adapter is an asyncssh
session on one side and an `asyncio.Transport` on the other, so that they run unchanged over
a channel (and TLS runs over it with `loop.start_tls`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncssh

    from devamb.tunnel.bastion import Bastion


class TunnelDown(ConnectionResetError):
    """The bastion's SSH connection is down (or dropped under this channel): the proxy's
    clean error, shown as `tunnel-down`."""

    code = "tunnel-down"

    def __init__(self, reason: str) -> None:
        super().__init__(f"tunnel-down: {reason}")
        self.strerror = f"tunnel-down: {reason}"


class ChannelTransport(asyncio.Transport):
    """One channel: the asyncssh session callbacks feed the protocol; the transport methods
    drive the channel."""

    _start_tls_compatible = True  # loop.start_tls may wrap it

    def __init__(self, bastion: Bastion, protocol: asyncio.BaseProtocol, peer: tuple[str, int]):
        super().__init__()
        self._bastion = bastion
        self._protocol = protocol
        self._peer = peer
        self._chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self._closing = False
        self._lost = False

    # -- the asyncssh session side -----------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._chan = chan
        self._bastion.channel_opened()
        self._protocol.connection_made(self)

    def session_started(self) -> None:
        pass

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        self._bastion.bytes_in += len(data)
        protocol = self._protocol
        if isinstance(protocol, asyncio.BufferedProtocol):
            _feed_buffered(protocol, data)
        else:
            protocol.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        keep = self._protocol.eof_received()  # type: ignore[attr-defined]
        return bool(keep)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._bastion.channel_closed()
        if exc is not None or (self._bastion.dropped and not self._closing):
            why = self._bastion.reason or (str(exc) if exc else "the SSH connection dropped")
            exc = TunnelDown(f"bastion {self._bastion.name}: {why}")
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    # -- the asyncio transport side ----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chan = self._chan
        if chan is None or self._closing or self._lost or chan.is_closing():
            return  # as asyncio's socket transports do: writes after the end are dropped
        self._bastion.bytes_out += len(data)
        chan.write(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        chan = self._chan
        if chan is not None and not (self._closing or self._lost or chan.is_closing()):
            chan.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._chan is not None:
            self._chan.close()

    def abort(self) -> None:
        self._closing = True
        if self._chan is not None:
            self._chan.abort()

    def _force_close(self, exc: BaseException | None) -> None:
        """What asyncio's SSL protocol calls on a fatal error (as on its own transports)."""
        self.abort()

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def pause_reading(self) -> None:
        if self._chan is not None:
            self._chan.pause_reading()

    def resume_reading(self) -> None:
        if self._chan is not None:
            self._chan.resume_reading()

    def is_reading(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self._chan.get_write_buffer_size() if self._chan is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._chan is not None:
            self._chan.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "bastion":
            return self._bastion.name
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand `data` to a buffered protocol (asyncio's SSL protocol is one) in the pieces its
    buffers take."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]
