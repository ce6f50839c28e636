"""WebSocket upgrades relayed byte for byte, as nginx does it.

The client's handshake is checked, then sent to the upstream on a connection of our own; the
upstream's 101 head goes back to the client as it came, and from then on both sockets are
joined by two asyncio Protocols that write what one receives straight into the other's
transport (with backpressure). Extensions (permessage-deflate) and subprotocols pass through
untouched: the two ends negotiated them with each other.

For the record, a `FrameRecorder` (websocket_record.py) follows each direction's frames and
adds text and binary payloads (unmasked, inflated) to the exchange's body previews and each
message to its message log. It reads the bytes after they were relayed and never holds a
frame: a stream it cannot follow is simply not recorded further.

Faults that fired for the upgrade (`request.frame_shaping`, see `FrameShaping`) act on the frames:
a direction with frame faults goes through a `FrameFlow`, a task that cuts the bytes at frame
boundaries (so latency delays each message), passes them through the faults' shapers
(bandwidth, slicer, cuts after N bytes) and then writes them; slow_close delays the upstream's
close frame.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from devamb.inspect.exchange import MessageLog
from devamb.proxy.connection import cut, reset
from devamb.proxy.dial import dial_with
from devamb.proxy.errors import UpstreamFailed
from devamb.proxy.response import StreamResponse
from devamb.proxy.websocket_client import WebSocketClient
from devamb.proxy.websocket_record import FrameRecorder
from devamb.proxy.websocket_shape import (
    DOWNSTREAM,
    UPSTREAM,
    FrameFlow,
    FrameShaping,
    frame_faults,
)

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange
    from devamb.proxy.request import FrontRequest

MAX_HEAD = 64 * 1024  # the upstream's 101 head must fit in this
CLOSE_GRACE = 5.0  # seconds the second side gets to finish closing once the first has ended

_HANDSHAKE = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
)


def valid_handshake(method: str, headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    """RFC 6455 4.2.1: what a server must see before it may answer 101."""
    if method != "GET" or headers.get("Upgrade", "").strip().lower() != "websocket":
        return False
    if "upgrade" not in _tokens(headers.getall("Connection", ())):
        return False
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return False
    key = headers.getall("Sec-WebSocket-Key", ())
    if len(key) != 1:
        return False
    try:
        return len(base64.b64decode(key[0].strip().encode("ascii"), validate=True)) == 16
    except (ValueError, binascii.Error):  # not ASCII, or not base64
        return False


def _tokens(values: Iterable[str]) -> set[str]:
    return {token.strip().lower() for value in values for token in value.split(",")}


async def relay_websocket(
    client: WebSocketClient,
    request: FrontRequest,
    url: URL,
    headers: CIMultiDict[str],
    exchange: Exchange,
    timeout: float,
) -> StreamResponse:
    """Relay one WebSocket session; returns once both connections are closed.

    Raises UpstreamFailed while nothing has been sent to the client yet. The response returned
    is `detached`: the front end has handed the connection over and must not touch it.
    """
    if not valid_handshake(request.method, request.headers):  # before the upstream is bothered
        raise UpstreamFailed(400, "bad-websocket-handshake",
                             "the WebSocket upgrade request is malformed")
    for name in _HANDSHAKE:  # exactly the client's: the upstream's Accept must match its key
        headers.popall(name, None)
        for value in request.headers.getall(name, ()):
            headers.add(name, value)
    headers["Connection"] = "Upgrade"
    headers["Upgrade"] = "websocket"
    exchange.request_headers = list(headers.items())

    session = _Session(exchange)
    head = await _handshake(client, session, url, headers, timeout)
    exchange.mark_first_byte()
    exchange.status = 101
    exchange.response_headers = _head_fields(head)
    response = StreamResponse(101, headers=exchange.response_headers)
    response.prepared = response.finished = True
    front = request.connection
    client._sessions.add(session)
    try:
        try:
            await front.send(head)
        except ConnectionError:
            session.abort()
            exchange.error = "client went away"
            response.keep_alive = False
            return response
        deflate = "permessage-deflate" in _extensions(exchange.response_headers)
        exchange.messages = log = MessageLog()
        session.client.recorder = FrameRecorder(
            exchange.request_body, deflate=deflate, messages=log, direction=UPSTREAM)
        session.upstream.recorder = FrameRecorder(
            exchange.response_body, deflate=deflate, messages=log, direction=DOWNSTREAM)
        session.shape(request.frame_shaping)
        front.detach(session.client)  # from here on the client's transport is ours to close
        response.detached = True
        await session.ending.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                await session.finished.wait()
    except BaseException:  # cancelled (engine shutdown): cut both, at once
        session.abort()
        raise
    finally:
        client._sessions.discard(session)
        session.stop_flows()
    session.abort()  # whatever did not finish closing in time
    return response


async def _handshake(
    client: WebSocketClient, session: _Session, url: URL, headers: CIMultiDict[str],
    timeout: float,
) -> bytes:
    """Connect, send the upgrade request, and return the upstream's 101 head."""
    host, port = url.host, url.port
    secure = url.scheme in ("https", "wss")
    try:
        if not host or port is None:
            raise OSError(f"no host and port in {url}")
        async with asyncio.timeout(timeout):
            await dial_with(client.dial)(
                lambda: session.upstream, host, port,
                ssl=client.ssl_context() if secure else None,
                server_hostname=host if secure else None,
            )
            lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
            session.upstream.write(
                f"GET {url.raw_path_qs} HTTP/1.1\r\n{lines}\r\n".encode("latin-1", "replace")
            )
            await session.head_ready.wait()
    except TimeoutError as exc:  # ours, or the kernel's ETIMEDOUT
        session.abort()
        reason = exc.strerror or f"no answer within {timeout:g}s"
        raise UpstreamFailed(502, "connect-failed", f"websocket to {host}: {reason}") from None
    except OSError as exc:
        session.abort()
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UpstreamFailed(502, "connect-failed", f"websocket to {host}: {reason}") from None
    except BaseException:
        session.abort()
        raise
    head = session.head
    status = None if head is None else _status(head)
    if head is None or status is None:
        session.abort()
        if head is not None or session.malformed:
            reason = session.head_error or "malformed response head"
            raise UpstreamFailed(502, "bad-response", f"websocket to {host}: {reason}")
        reason = session.head_error or "upstream closed the connection"
        raise UpstreamFailed(502, "connect-failed", f"websocket to {host}: {reason}")
    if status != 101:
        session.abort()
        raise UpstreamFailed(502, "websocket-refused", f"upstream refused: {status}")
    return head


def _status(head: bytes) -> int | None:
    parts = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or len(parts[1]) != 3:
        return None
    return int(parts[1]) if parts[1].isdigit() else None


def _head_fields(head: bytes) -> list[tuple[str, str]]:
    fields = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return fields


def _extensions(fields: list[tuple[str, str]]) -> set[str]:
    """The extension names the upstream accepted (Sec-WebSocket-Extensions: name; params, ...)."""
    values = [value for name, value in fields if name.lower() == "sec-websocket-extensions"]
    return {item.split(";", 1)[0] for item in _tokens(values)}


# -- the relay ---------------------------------------------------------------------------------


class _Session:
    """The two sockets of one relayed WebSocket and how far along they are."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.client = _Side(self, inbound=True)
        self.upstream = _Side(self, inbound=False)
        self.head: bytes | None = None  # the upstream's response head, once complete
        self.head_error: str | None = None
        self.malformed = False  # the head never ended (or was not HTTP)
        self.head_ready = asyncio.Event()
        self.ending = asyncio.Event()  # one side has ended: the session is over
        self.finished = asyncio.Event()  # both connections are closed
        self._head_buffer = bytearray()
        self._flows: list[FrameFlow] = []

    def shape(self, shaping: FrameShaping | None) -> None:
        """Put the faults that act on frames between the two sides, each in its direction."""
        for source, direction in ((self.client, UPSTREAM), (self.upstream, DOWNSTREAM)):
            faults, close_delay = frame_faults(shaping, direction)
            if faults or close_delay:
                source.flow = FrameFlow(self, source, faults, direction, close_delay)
                self._flows.append(source.flow)

    def stop_flows(self) -> None:
        for flow in self._flows:
            flow.task.cancel()

    def early(self, side: _Side, data: bytes) -> None:
        """Bytes from the upstream before the client's connection joined: the head, then
        frames that are held (with reading paused) until the client is there to take them."""
        if self.head_ready.is_set():
            side.pending.append(data)  # uvloop may deliver some before the pause takes effect
            side.pause_reading()
            return
        buffer = self._head_buffer
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self.head_error = "response head too large"
                self.malformed = True
                self.head_ready.set()
            return
        self.head = bytes(buffer[: end + 4])
        if len(buffer) > end + 4:
            side.pending.append(bytes(buffer[end + 4 :]))
        self._head_buffer = bytearray()
        side.pause_reading()  # until the client's connection joins
        self.head_ready.set()

    def joined(self) -> None:
        """The client's transport arrived (the front detached it): connect the two sides."""
        client, upstream = self.client, self.upstream
        client.peer = upstream
        upstream.peer = client
        transport = client.transport
        if transport is None or transport.is_closing():  # gone already: its end may never be
            client.end(None)  # reported to us, so take it as over
            client.lost = True
            self.side_lost(client)
            return
        client.resume_reading()  # the front may have stopped reading while we connected
        pending, upstream.pending = upstream.pending, []
        for data in pending:
            upstream.relay(data)
        if upstream.ended:
            self.end_of(upstream, upstream.error)
        elif not client.write_paused:  # (the pending bytes may have filled its buffer)
            upstream.resume_reading()

    def side_ended(self, side: _Side, exc: BaseException | None) -> None:
        if not side.inbound and not self.head_ready.is_set():
            self.head_error = (str(exc) or type(exc).__name__) if exc else None
            self.head_ready.set()
            return
        if exc is not None and self.exchange.error is None and side.peer is not None:
            self.exchange.error = f"{'client' if side.inbound else 'upstream'}: {exc}"
        if side.peer is not None:  # joined: the session is over
            self.end_of(side, exc)

    def end_of(self, side: _Side, exc: BaseException | None) -> None:
        """Nothing more comes from `side`: once what it sent is through its flow, close its
        peer as it closed, and the session is over."""
        flow = side.flow
        if flow is not None and exc is None and not flow.task.done():
            flow.feed_eof()  # the flow ends the session when it has written everything
            return
        if flow is not None:
            flow.task.cancel()
        side.pass_end(exc)
        self.ending.set()

    def side_lost(self, side: _Side) -> None:
        if self.client.lost and self.upstream.lost:
            self.finished.set()

    def close(self) -> None:
        """End the session from outside (its target is closing): a clean close upstream."""
        transport = self.upstream.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def cut(self, reason: str, *, with_reset: bool) -> None:
        """A fault cut the session: both connections go."""
        if self.exchange.error is None:
            self.exchange.error = reason
        for side in (self.client, self.upstream):
            if not side.lost:
                cut(side.transport, with_reset=with_reset)
        self.ending.set()

    def abort(self) -> None:
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.lost:
                side.transport.abort()


class _Side(asyncio.Protocol):
    """One socket of a relayed session; what it receives goes to its peer, then the record."""

    def __init__(self, session: _Session, inbound: bool) -> None:
        self.session = session
        self.inbound = inbound  # True for the client's side
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None  # set once both sockets are joined
        self.recorder: FrameRecorder | None = None
        self.pending: list[bytes] = []
        self.ended = False  # EOF or lost: nothing more comes from this side
        self.lost = False
        self.error: BaseException | None = None
        self.write_paused = False  # our transport's buffer is full: the peer is not read
        self.writable = asyncio.Event()  # the same, for a frame flow writing to this side
        self.writable.set()
        self.flow: FrameFlow | None = None  # what this side receives goes through faults

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def relay(self, data: bytes) -> None:
        if self.flow is not None:
            self.flow.feed(data)
            return
        self.peer.write(data)  # type: ignore[union-attr]
        if self.recorder is not None:
            self.recorder.feed(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def pass_end(self, exc: BaseException | None) -> None:
        """Close the peer as this side closed: a reset as a reset."""
        peer = self.peer
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return
        if exc is not None:
            reset(peer.transport)
        else:
            peer.transport.close()  # after what is still buffered for it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.inbound:
            self.session.joined()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            if not self.inbound:
                self.session.early(self, data)
            return
        self.relay(data)

    def eof_received(self) -> bool:
        self.end(None)
        return False  # close our side too: a WebSocket has no use for half a connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.end(exc)
        self.lost = True
        self.session.side_lost(self)

    def end(self, exc: BaseException | None) -> None:
        if not self.ended:
            self.ended = True
            self.error = exc
            self.session.side_ended(self, exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.writable.clear()
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.writable.set()
        if self.peer is not None:
            self.peer.resume_reading()
