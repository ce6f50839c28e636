"""HTTP/2 plumbing shared by both ends: one `h2` H2Connection driven by an asyncio Protocol.

Each stream is a queue of what the peer sent (headers, data, trailers, end, reset). Received
data is acknowledged (its window reopened) only when the reader says it has passed it on
(`H2Stream.ack`), so a peer can never have more in flight than its stream window; sending waits
for the peer's windows and for the transport's buffer to drain. Nothing here knows services.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

H2Headers = list[tuple[bytes, bytes]]
CONNECTION_WINDOW = 16 * 1024 * 1024  # the connection window we give a peer: streams, not it,
# bound what is in flight (a stalled stream holds at most its own stream window)
MAX_STREAMS = 1000  # concurrent streams a client may open on one connection
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)
PROTOCOL_ERROR = int(h2.errors.ErrorCodes.PROTOCOL_ERROR)
INTERNAL_ERROR = int(h2.errors.ErrorCodes.INTERNAL_ERROR)
CANCEL = int(h2.errors.ErrorCodes.CANCEL)
REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)


class StreamGone(Exception):
    """The stream was reset (by the peer or us) or its connection was lost."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class Inbound:
    """One thing the peer sent on a stream."""

    kind: str  # "headers" | "data" | "trailers" | "end" | "reset"
    headers: H2Headers = field(default_factory=list)
    data: bytes = b""
    flow: int = 0  # flow-controlled length (with padding) to acknowledge once passed on
    code: int = 0  # the RST_STREAM error code ("reset")
    lost: bool = False  # "reset" because the connection went away, not an RST_STREAM
    local: bool = False  # "reset" by our own side (H2Stream.reset), not by the peer


class H2Stream:
    def __init__(self, endpoint: H2Endpoint, stream_id: int) -> None:
        self.endpoint = endpoint
        self.id = stream_id
        self._queued: deque[Inbound] = deque()  # what the peer sent, not yet read
        self._arrived = asyncio.Event()
        self.window = asyncio.Event()  # set when the peer may have opened its windows
        self.gone: StreamGone | None = None
        self.sent_end = False
        self.got_end = False
        self.ended_at_headers = False  # the request (or response) had no body: END_STREAM

    async def next(self) -> Inbound:
        while not self._queued:
            self._arrived.clear()
            await self._arrived.wait()
        return self._queued.popleft()

    def peek(self) -> Inbound | None:
        """What `next` would return now, left in place; None when nothing is queued."""
        return self._queued[0] if self._queued else None

    def put(self, item: Inbound) -> None:
        self._queued.append(item)
        self._arrived.set()

    def ack(self, size: int) -> None:
        """`size` flow-controlled bytes were passed on: let the peer send as many again."""
        self.endpoint.ack(self.id, size)

    def send_headers(self, headers: H2Headers, end: bool = False) -> None:
        self._check()
        try:
            self.endpoint.conn.send_headers(self.id, headers, end_stream=end)
        except h2.exceptions.StreamClosedError:
            raise StreamGone(CANCEL, "the stream is closed") from None
        self.sent_end = end
        self.endpoint.flush()
        self.endpoint.settle(self)

    async def send_data(self, data: bytes, end: bool = False) -> None:
        """Send as the peer's windows allow; raises StreamGone if the stream goes away."""
        endpoint = self.endpoint
        conn = endpoint.conn
        view = memoryview(data)
        while view or end:
            self._check()
            if not view:
                conn.end_stream(self.id)
                self.sent_end = True
                endpoint.flush()
                break
            try:
                window = conn.local_flow_control_window(self.id)
            except h2.exceptions.StreamClosedError:
                raise StreamGone(CANCEL, "the stream is closed") from None
            size = min(window, conn.max_outbound_frame_size, len(view))
            if size <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            last = size == len(view)
            conn.send_data(self.id, bytes(view[:size]), end_stream=end and last)
            view = view[size:]
            endpoint.flush()
            if end and last:
                self.sent_end = True
                break
            await endpoint.writable()
        await endpoint.writable()
        endpoint.settle(self)

    def send_trailers(self, headers: H2Headers) -> None:
        self.send_headers(headers, end=True)

    def reset(self, code: int = CANCEL) -> None:
        if self.gone is not None:
            return
        self.gone = StreamGone(code, f"reset by devamb (code {code})")
        self.put(Inbound("reset", code=code, local=True))  # wakes its reader
        self.window.set()
        try:
            self.endpoint.conn.reset_stream(self.id, code)
            self.endpoint.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.endpoint.forget(self)

    def _check(self) -> None:
        if self.gone is not None:
            raise self.gone


class H2Endpoint(asyncio.Protocol):
    """One HTTP/2 connection, either side; subclasses say what a new stream means."""

    def __init__(self, client_side: bool) -> None:
        config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.closed = asyncio.Event()
        self.goaway = False  # the peer sent GOAWAY: no new streams on this connection
        self._writable = asyncio.Event()
        self._writable.set()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        client = bool(self.conn.config.client_side)
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
        }
        if client:
            settings[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        self.conn.local_settings = h2.settings.Settings(client=client, initial_values=settings)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error(str(exc) or type(exc).__name__)
            with contextlib.suppress(h2.exceptions.ProtocolError):  # unless h2 sent it
                self.conn.close_connection(PROTOCOL_ERROR)
            self.flush()  # the GOAWAY
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.goaway = True
        for stream in list(self.streams.values()):
            self._gone(stream, CANCEL, "the connection was lost", lost=True)
        self.streams.clear()
        self._writable.set()
        self.closed.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- for streams ----------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def writable(self) -> None:
        if not self._writable.is_set():
            await self._writable.wait()
        if self.closed.is_set():
            raise StreamGone(CANCEL, "the connection was lost")

    def ack(self, stream_id: int, size: int) -> None:
        if size <= 0 or self.closed.is_set():
            return
        try:
            self.conn.acknowledge_received_data(size, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.flush()

    def settle(self, stream: H2Stream) -> None:
        """Forget a stream once both sides ended it."""
        if stream.sent_end and stream.got_end:
            self.forget(stream)

    def forget(self, stream: H2Stream) -> None:
        self.streams.pop(stream.id, None)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.conn.close_connection()
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
            self.transport.close()

    # -- hooks ----------------------------------------------------------------------------------

    def new_stream(self, stream: H2Stream) -> None:
        """The peer opened `stream` (server side)."""

    def protocol_error(self, reason: str) -> None:
        """The peer broke HTTP/2; the connection ends with a GOAWAY."""

    # -- events ---------------------------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = H2Stream(self, event.stream_id)
            self.streams[event.stream_id] = stream
            stream.ended_at_headers = event.stream_ended is not None
            stream.put(Inbound("headers", headers=_pairs(event.headers)))
            self.new_stream(stream)
        elif isinstance(event, h2.events.ResponseReceived):
            self._put(event.stream_id, Inbound("headers", headers=_pairs(event.headers)))
        elif isinstance(event, h2.events.DataReceived):
            if not self._put(event.stream_id, Inbound(
                "data", data=event.data or b"", flow=event.flow_controlled_length or 0
            )):
                self.ack(event.stream_id or 0, event.flow_controlled_length or 0)
        elif isinstance(event, h2.events.TrailersReceived):
            self._put(event.stream_id, Inbound("trailers", headers=_pairs(event.headers)))
        elif isinstance(event, h2.events.StreamEnded):
            ended = self.streams.get(event.stream_id or 0)
            if ended is not None:
                ended.got_end = True
                ended.put(Inbound("end"))
                self.settle(ended)
        elif isinstance(event, h2.events.StreamReset):
            reset = self.streams.pop(event.stream_id or 0, None)
            if reset is not None:
                code = int(event.error_code or 0)
                self._gone(reset, code, f"the peer reset the stream (code {code})")
        elif isinstance(event, h2.events.WindowUpdated):
            if not event.stream_id:
                for waiting in self.streams.values():
                    waiting.window.set()
            elif event.stream_id in self.streams:
                self.streams[event.stream_id].window.set()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for stream in self.streams.values():
                stream.window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = True
            last = event.last_stream_id or 0
            for refused in list(self.streams.values()):
                if refused.id > last:  # never processed: the peer refused it
                    self.streams.pop(refused.id, None)
                    self._gone(refused, REFUSED_STREAM, "the peer sent GOAWAY", lost=True)

    def _put(self, stream_id: int | None, item: Inbound) -> bool:
        stream = self.streams.get(stream_id or 0)
        if stream is None:
            return False
        stream.put(item)
        return True

    @staticmethod
    def _gone(stream: H2Stream, code: int, reason: str, lost: bool = False) -> None:
        if stream.gone is None:
            stream.gone = StreamGone(code, reason)
        stream.put(Inbound("reset", code=code, lost=lost))
        stream.window.set()


def _pairs(headers: object) -> H2Headers:
    """h2 gives (bytes, bytes) pairs with header_encoding=None."""
    assert isinstance(headers, list)
    return [(bytes(k), bytes(v)) for k, v in headers]
