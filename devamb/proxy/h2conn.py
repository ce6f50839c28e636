"""HTTP/2 plumbing shared by both ends: one `h2` H2Connection driven by an asyncio Protocol.

Each stream is a queue of what the peer sent (headers, data, trailers, end, reset). Received
data is acknowledged (its window reopened) only when the reader says it has passed it on
(`H2Stream.ack`), so a peer can never have more in flight than its stream window; sending waits
for the peer's windows and for the transport's buffer to drain. Nothing here knows services.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import h2.utilities
import h2.windows
import hpack
import hyperframe.exceptions
import hyperframe.flags
import hyperframe.frame

from devamb.proxy import h2checks, h2frames, h2hpack, h2limits
from devamb.proxy.h2frames import UNKNOWN, BytesPairs, Fields
from devamb.proxy.h2limits import Bucket, H2Limits

H2Headers = list[tuple[bytes, bytes]]
CONNECTION_WINDOW = 16 * 1024 * 1024  # the connection window we give a peer: streams, not it,
# bound what is in flight (a stalled stream holds at most its own stream window)
WRITE_NOW = 65536  # DATA bytes waiting for the end of the loop's turn that are written at once
MAX_STREAMS = h2limits.DEFAULT.max_streams  # concurrent streams a client may open
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)
PROTOCOL_ERROR = int(h2.errors.ErrorCodes.PROTOCOL_ERROR)
INTERNAL_ERROR = int(h2.errors.ErrorCodes.INTERNAL_ERROR)
CANCEL = int(h2.errors.ErrorCodes.CANCEL)
REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)
SETTINGS_TIMEOUT = int(h2.errors.ErrorCodes.SETTINGS_TIMEOUT)
ENHANCE_YOUR_CALM = int(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
UNLIMITED = 2**31 - 1
_CLOSED = h2.stream.StreamState.CLOSED
_SEND_HEADERS = h2.connection.ConnectionInputs.SEND_HEADERS
_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_STREAM_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_SEND_INFORMATIONAL = h2.stream.StreamInputs.SEND_INFORMATIONAL_HEADERS
_STREAM_SEND_DATA = h2.stream.StreamInputs.SEND_DATA
_SEND_END_STREAM = h2.stream.StreamInputs.SEND_END_STREAM
_STREAM_STEPS = h2.stream._transitions  # (state, input) -> (function, state): rehashed in place
_FRAME_HEADER = hyperframe.frame._STRUCT_HBBBL  # length (24 bits), type, flags, stream id
_HEADERS_TYPE = hyperframe.frame.HeadersFrame.type
_DATA_TYPE = hyperframe.frame.DataFrame.type
_END_STREAM = 0x1  # (DATA and HEADERS)
_END_HEADERS = 0x4
_END_STREAM_HEADERS = _END_STREAM | _END_HEADERS
_PADDED_PRIORITY = 0x08 | 0x20  # (the flags that add fields before a HEADERS or DATA body)
_unpack_header = _FRAME_HEADER.unpack_from
_RECV_HEADERS = h2.connection.ConnectionInputs.RECV_HEADERS
_RECV_DATA = h2.connection.ConnectionInputs.RECV_DATA
_STREAM_RECV_HEADERS = h2.stream.StreamInputs.RECV_HEADERS
_RECV_INFORMATIONAL = h2.stream.StreamInputs.RECV_INFORMATIONAL_HEADERS
_STREAM_RECV_DATA = h2.stream.StreamInputs.RECV_DATA
_RECV_END_STREAM = h2.stream.StreamInputs.RECV_END_STREAM
WINDOW_UPDATE_TYPE = hyperframe.frame.WindowUpdateFrame.type
_STREAM_OPEN = h2.stream.STREAM_OPEN
_RECV_WINDOW_UPDATE = h2.connection.ConnectionInputs.RECV_WINDOW_UPDATE
_unpack_increment = hyperframe.frame._STRUCT_L.unpack_from
_guard_increment_window = h2.utilities.guard_increment_window
WINDOW_UPDATE_LENGTH = b"\x00\x00\x04"  # a WINDOW_UPDATE frame's length field
_SHRUNK = "Flow control window shrunk below 0"  # (h2's FlowControlError)


def _processed(manager: h2.windows.WindowManager, size: int) -> int | None:
    """h2's WindowManager.process_bytes (4.x) in one function: the increment to send for
    `size` more bytes processed, if any."""
    manager._bytes_processed += size
    processed = manager._bytes_processed
    if not processed:
        return None
    current = manager.current_window_size
    most = manager.max_window_size
    increment = 0
    if (current == 0 and processed > min(1024, most // 4)) or processed >= most // 2:
        increment = min(processed, most - current)
        manager._bytes_processed = 0
    manager.current_window_size = current + increment
    return increment


def _data_frame(stream_id: int, end: bool, data: bytes) -> hyperframe.frame.DataFrame:
    """The DATA frame received as `data` (for h2's own steps, which take a frame)."""
    frame = hyperframe.frame.DataFrame(stream_id, data)
    if end:
        set.add(frame.flags, "END_STREAM")  # type: ignore[arg-type]
    frame.body_len = len(data)
    return frame


_is_informational = h2checks._is_informational  # (h2's own functions: h2checks installs
_extract_method = h2checks._extract_method  # its memories in their place)
_initialize_content_length = h2checks._initialize_content_length


def code_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _values(fields: Fields) -> dict[bytes, str]:
    """A kept list's text by name (the first of a name wins), made once per Fields."""
    values = fields.values = {key: value.decode("latin-1")
                              for key, value in reversed(fields.pairs)}
    return values


def header(headers: H2Headers, name: bytes) -> str | None:
    """The value of the first header `name` (HTTP/2 names are lower case; pseudo-headers too)."""
    if type(headers) is BytesPairs:
        fields = headers._fields  # (~13 look-ups per relayed call: the kept list's text by
        if fields is not None and fields.length == len(headers):  # name, made once)
            return (fields.values or _values(fields)).get(name)
        index = headers._index
        if index is None or headers._indexed != len(headers):
            found = headers.first(name)
        else:
            found = index.get(name)
        return None if found is None else found.decode("latin-1")
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def lookup(headers: H2Headers) -> Callable[[bytes], str | None]:
    """`header` for several names of one list: for a list that carries its Fields (a
    received list, or one made from it), the dict of its text by name's `get` (a C call per
    name, no Python frame: a relayed call looks ~13 up), else `header` bound to the list."""
    if type(headers) is BytesPairs:
        fields = headers._fields
        if fields is not None and fields.length == len(headers):
            return (fields.values or _values(fields)).get
    return functools.partial(header, headers)


def as_text(headers: H2Headers) -> list[tuple[str, str]]:
    """Headers as the record keeps them: text pairs. A list seen before (a client's repeated
    requests, an upstream's repeated answers) gets a copy of its text, the pairs shared: by
    the list's Fields when it carries them (h2frames), else by the pairs."""
    if type(headers) is BytesPairs:
        fields = headers._fields
        if fields is not None and fields.length == len(headers):
            text = fields.text
            if text is None:
                text = fields.text = [(k.decode("latin-1"), v.decode("latin-1"))
                                      for k, v in fields.pairs]
            return list(text)
    try:
        key = tuple(headers)
        text = _TEXTS.get(key)
    except TypeError:  # (not hashable pairs)
        key, text = None, None
    if text is None:
        text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        if key is not None and len(key) <= TEXTS_LONGEST:
            if len(_TEXTS) >= TEXTS_KEPT:
                _TEXTS.clear()
            _TEXTS[key] = text
    return list(text)


TEXTS_KEPT = 256  # header lists whose text is remembered (all forgotten when full)
TEXTS_LONGEST = 32  # fields in a list worth remembering
_TEXTS: dict[tuple[tuple[bytes, bytes], ...], list[tuple[str, str]]] = {}


class StreamGone(Exception):
    """The stream was reset (by the peer or us) or its connection was lost."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Inbound:
    """One thing the peer sent on a stream (a plain class: ~8 are made per relayed call, and
    a dataclass's __init__ with a default factory costs twice the Python)."""

    __slots__ = ("code", "data", "flow", "headers", "kind", "local", "lost")

    def __init__(self, kind: str, headers: H2Headers | None = None, data: bytes = b"",
                 flow: int = 0, code: int = 0, lost: bool = False, local: bool = False) -> None:
        self.kind = kind  # "headers" | "data" | "trailers" | "end" | "reset" (| "expired")
        self.headers: H2Headers = [] if headers is None else headers
        self.data = data
        self.flow = flow  # flow-controlled length (with padding) to acknowledge once passed on
        self.code = code  # the RST_STREAM error code ("reset")
        self.lost = lost  # "reset" because the connection went away, not an RST_STREAM
        self.local = local  # "reset" by our own side (H2Stream.reset), not by the peer

    def __repr__(self) -> str:
        return f"Inbound({self.kind!r}, code={self.code}, flow={self.flow})"


_END = Inbound("end")  # (every stream's end: an item is only read, never changed)


class H2Stream:
    # the reader forgets the stream once done with it (the relay's try, after its last write):
    # its end schedules no settle of its own (one callback less per relayed call)
    reader_settles = False

    def __init__(self, endpoint: H2Endpoint, stream_id: int) -> None:
        self.endpoint = endpoint
        self.id = stream_id
        self._queued: deque[Inbound] = deque()  # what the peer sent, not yet read
        # the readers waiting for the peer (a future each, as asyncio.Event keeps them, without
        # the Event's Python layers: a relayed call puts ~8 items and waits once or twice)
        self._readers: list[asyncio.Future[None]] = []
        # (made when first waited on: most streams never wait for a window)
        self._window: asyncio.Event | None = None  # set when the peer may have opened windows
        self.gone: StreamGone | None = None
        self.sent_end = False
        self.got_end = False
        self.ended_at_headers = False  # the request (or response) had no body: END_STREAM
        # called (once) with the "reset" this stream gets, for a relay with no reader on it
        self.on_reset: Callable[[Inbound], None] | None = None

    async def next(self) -> Inbound:
        while not self._queued:
            arrived = self.endpoint._loop.create_future()
            self._readers.append(arrived)
            try:
                await arrived
            finally:
                self._readers.remove(arrived)
        return self._queued.popleft()

    def expire(self) -> None:
        """A reader's deadline passed (a timer's callback): a reader waiting on an empty
        queue gets an "expired" item (one woken by an item already queued gets that)."""
        if not self._queued:
            self.put(Inbound("expired"))

    def window_opened(self) -> None:
        """The peer may have opened its windows: a send waiting for them tries again."""
        if self._window is not None:
            self._window.set()

    def peek_after(self) -> Inbound | None:
        """The item queued after the one `peek` returns."""
        return self._queued[1] if len(self._queued) > 1 else None

    def take(self) -> Inbound:
        """The item `peek` returned, taken."""
        return self._queued.popleft()

    def peek(self) -> Inbound | None:
        """What `next` would return now, left in place; None when nothing is queued."""
        return self._queued[0] if self._queued else None

    def put(self, item: Inbound) -> None:
        self._queued.append(item)
        for reader in self._readers:
            if not reader.done():
                reader.set_result(None)
        if self.on_reset is not None and item.kind == "reset":
            hook, self.on_reset = self.on_reset, None
            hook(item)

    def ack(self, size: int) -> None:
        """`size` flow-controlled bytes were passed on: let the peer send as many again."""
        self.endpoint.ack(self.id, size)

    def send_headers(self, headers: H2Headers, end: bool = False, more: bool = False) -> None:
        """`more`: the caller sends another frame on this connection before it yields to the
        loop (a unary call's DATA after its HEADERS), whose flush writes this one too: no
        write is scheduled for this one alone (H2Endpoint.flush)."""
        if self.gone is not None:  # (_check's)
            raise self.gone
        endpoint = self.endpoint
        try:
            endpoint.conn.send_headers(self.id, headers, end_stream=end)
        except h2.exceptions.StreamClosedError:
            raise StreamGone(CANCEL, "the stream is closed") from None
        self.sent_end = end
        endpoint.flush(0, end, more)
        if end and self.got_end:  # (settle's: three header blocks are sent per call)
            endpoint.forget(self)

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
                endpoint.flush(end=True)
                break
            try:
                window = conn.local_flow_control_window(self.id)
            except h2.exceptions.StreamClosedError:
                raise StreamGone(CANCEL, "the stream is closed") from None
            size = min(window, conn.max_outbound_frame_size, len(view))
            if size <= 0:
                opened = self._window
                if opened is None:
                    opened = self._window = asyncio.Event()
                else:
                    opened.clear()
                endpoint.flush()  # (what was sent before with `more` leaves meanwhile)
                await opened.wait()
                continue
            last = size == len(view)
            conn.send_data(self.id, bytes(view[:size]), end_stream=end and last)
            view = view[size:]
            endpoint.flush(size, end=end and last)
            if end and last:
                self.sent_end = True
                break
            await endpoint.writable()
        await endpoint.writable()
        endpoint.settle(self)

    def send_now(self, data: bytes, end: bool = False, more: bool = False) -> bool:
        """Send `data` (one frame at most) at once if the peer's windows and the transport
        allow it, without waiting; False (nothing sent) otherwise: use `send_data`. `more`
        as for send_headers."""
        endpoint = self.endpoint
        if self.gone is not None or endpoint.paused or endpoint.lost:
            return False
        conn = endpoint.conn
        size = len(data)
        state = conn.streams.get(self.id)  # (h2's; gone once closed: send_data says why)
        if (state is None or size > conn.max_outbound_frame_size
                or size > conn.outbound_flow_control_window
                or size > state.outbound_flow_control_window):
            return False  # (local_flow_control_window's: the smaller of the two windows)
        try:
            conn.send_data(self.id, data, end_stream=end)
        except h2.exceptions.StreamClosedError:
            return False
        if end:
            self.sent_end = True
        endpoint.flush(size, end, more)
        if self.sent_end and self.got_end:  # (settle's)
            endpoint.forget(self)
        return True

    def send_trailers(self, headers: H2Headers) -> None:
        self.send_headers(headers, end=True)

    def reset(self, code: int = CANCEL) -> None:
        if self.gone is not None:
            return
        self.gone = StreamGone(code, f"reset by devamb (code {code})")
        self.put(Inbound("reset", code=code, local=True))  # wakes its reader
        self.window_opened()
        try:
            self.endpoint.conn.reset_stream(self.id, code)
            self.endpoint.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.endpoint.forget(self)

    def _check(self) -> None:
        if self.gone is not None:
            raise self.gone


class _Connection(h2.connection.H2Connection):
    """h2's count of open streams walks every stream (purging the closed ones) and h2 asks
    it for every new stream: ~4 % of the relay's CPU at 100 streams in flight. Here the walk
    runs every PURGE_EVERY asks, or when the count could reach the limit it is asked for;
    between walks the last count, plus one for each stream begun since, is given: at least
    the true count, and below the limit either way. (The HEADERS steps below ask only when
    the streams h2 holds could reach the limit.)"""

    PURGE_EVERY = 32
    encoder: h2hpack.Encoder
    decoder: h2hpack.Decoder

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        # HPACK that remembers repeated header lists and blocks (h2hpack); its encoder
        # normalizes outbound headers as h2 would (h2's own pass is off: see H2Endpoint)
        self.encoder = h2hpack.Encoder()
        self.decoder = h2hpack.Decoder(self.DEFAULT_MAX_HEADER_LIST_SIZE)
        self._asks = 0
        self._counted = [0, 0]  # by remainder (stream id parity)

    def _prepare_for_sending(self, frames: list[hyperframe.frame.Frame]) -> None:
        """h2's, without its generators for the usual single frame (nor its assert that the
        frame fits the peer's frame size: h2 cut it to that size, reading the same setting
        through three Python calls)."""
        if len(frames) == 1:
            self._data_to_send += frames[0].serialize()
        elif frames:
            super()._prepare_for_sending(frames)

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        """h2's (4.x), without its two log lines, the windows' arithmetic (WindowManager's
        process_bytes) in one function: a relayed call acknowledges its DATA each way."""
        if stream_id <= 0:
            raise ValueError(
                f"Stream ID {stream_id} is not valid for acknowledge_received_data")
        if acknowledged_size < 0:
            raise ValueError("Cannot acknowledge negative data")
        frames: list[hyperframe.frame.Frame] = []
        increment = _processed(self._inbound_flow_control_window_manager, acknowledged_size)
        if increment:
            frames.append(hyperframe.frame.WindowUpdateFrame(0, increment))
        stream = self.streams.get(stream_id)
        if stream is None:
            # (h2's: raises for a stream never opened, passes for a closed one)
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                stream = self._get_stream_by_id(stream_id)
        if stream is not None and _STREAM_OPEN[stream.state_machine.state]:
            increment = _processed(stream._inbound_window_manager, acknowledged_size)
            if increment:
                frames.append(hyperframe.frame.WindowUpdateFrame(stream_id, increment))
        if frames:
            self._prepare_for_sending(frames)

    def receive_data(self, data: Any) -> list[h2.events.Event]:
        """h2's (4.x), without its trace line, its frames taken without an iterator (whose end
        is a StopIteration per read)."""
        buffer = self.incoming_buffer
        if buffer._preamble_len:
            buffer.add_data(data)
        else:
            buffer._data += data
        buffer.max_frame_size = self.max_inbound_frame_size
        events: list[h2.events.Event] = []
        take, receive = h2frames.take_frame, self._receive_frame
        data = buffer._data
        try:
            while True:
                if len(data) < 9:  # (take_frame's first step, inline: the end of every read)
                    break
                if not buffer._headers_buffer:
                    # a whole DATA, or HEADERS with END_HEADERS, without padding nor priority
                    # (a relayed call's frames): taken without a frame object
                    high, low, kind, flag_byte, stream_id = _unpack_header(data)
                    end = (high << 8) + low + 9
                    if ((kind == _DATA_TYPE
                         or (kind == _HEADERS_TYPE and flag_byte & _END_HEADERS))
                            and not flag_byte & _PADDED_PRIORITY and len(data) >= end
                            and end - 9 <= buffer.max_frame_size and stream_id & 0x7FFFFFFF):
                        body = bytes(data[9:end])
                        del data[:end]
                        try:  # (_receive_frame's steps for it, inline: ~5 a relayed call)
                            if kind == _DATA_TYPE:
                                frames, received = self._data_in(
                                    stream_id & 0x7FFFFFFF, bool(flag_byte & _END_STREAM), body)
                            else:
                                frames, received = self._headers_in(
                                    stream_id & 0x7FFFFFFF, bool(flag_byte & _END_STREAM), body)
                        except (h2.exceptions.StreamClosedError,
                                h2.exceptions.StreamIDTooLowError) as e:
                            events += self._stream_error(e)
                            continue
                        if frames:
                            self._prepare_for_sending(frames)
                        events += received
                        continue
                    if (kind == WINDOW_UPDATE_TYPE and end == 13 and len(data) >= 13
                            and not stream_id & 0x7FFFFFFF):
                        # the connection's credit (a gRPC peer's, after each message), its
                        # increment in hyperframe's bounds: taken without a frame object
                        increment = _unpack_increment(data, 9)[0]
                        if 1 <= increment <= 0x7FFFFFFF:
                            del data[:13]
                            events += self._credit_in(increment)
                            continue
                frame = take(buffer)
                if frame is None:
                    break
                events += receive(frame)
        except hyperframe.exceptions.InvalidPaddingError as e:  # (h2's)
            self._terminate_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            raise h2.exceptions.ProtocolError("Received frame with invalid padding.") from e
        except h2.exceptions.ProtocolError as e:
            self._terminate_connection(e.error_code)
            raise
        return events

    def _receive_frame(self, frame: hyperframe.frame.Frame) -> list[h2.events.Event]:
        """h2's (4.x), without the trace line it formats for every frame (its logger is off)."""
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError) as e:
            return self._stream_error(e)
        self._prepare_for_sending(frames)
        return events

    def _credit_in(self, increment: int) -> list[h2.events.Event]:
        """_receive_window_update_frame for a WINDOW_UPDATE on the connection (stream 0) whose
        increment hyperframe accepts (receive_data)."""
        connection = self.state_machine  # (its step, when it changes nothing: inline)
        events: list[h2.events.Event] = (
            [] if (connection.state, _RECV_WINDOW_UPDATE) in h2frames._STAYS
            else connection.process_input(_RECV_WINDOW_UPDATE))
        window = self.outbound_flow_control_window + increment  # (guard_increment_window's)
        if window > UNLIMITED:
            window = _guard_increment_window(self.outbound_flow_control_window, increment)
        self.outbound_flow_control_window = window
        events.append(h2.events.WindowUpdated(stream_id=0, delta=increment))
        return events

    def _stream_error(self, e: Exception) -> list[h2.events.Event]:
        """h2's (4.x) answer to a frame on a stream that is closed or was never opened."""
        if isinstance(e, h2.exceptions.StreamClosedError):
            # closed by RST_STREAM: a stream error (RST_STREAM back); otherwise the connection's
            if not self._stream_is_closed_by_reset(e.stream_id):
                raise e
            reset = hyperframe.frame.RstStreamFrame(e.stream_id)
            reset.error_code = e.error_code
            self._prepare_for_sending([reset])
            return cast(list[h2.events.Event], e._events)
        assert isinstance(e, h2.exceptions.StreamIDTooLowError)
        if self._stream_is_closed_by_reset(e.stream_id):
            reset = hyperframe.frame.RstStreamFrame(e.stream_id)
            reset.error_code = h2.errors.ErrorCodes.STREAM_CLOSED
            self._prepare_for_sending([reset])
            return []
        if self._stream_is_closed_by_end(e.stream_id):
            raise h2.exceptions.StreamClosedError(e.stream_id) from e
        raise e

    def _begin_new_stream(self, stream_id: int,
                          allowed_ids: h2.connection.AllowedStreamIDs) -> h2.stream.H2Stream:
        """h2's (4.x), without its three log lines (its logger is off) and its helper call for
        the stream's direction: two streams are begun per relayed call."""
        outbound = stream_id % 2 == int(self.config.client_side)
        highest = (self.highest_outbound_stream_id if outbound
                   else self.highest_inbound_stream_id)
        if stream_id <= highest:
            raise h2.exceptions.StreamIDTooLowError(stream_id, highest)
        if (stream_id % 2) != int(allowed_ids):
            raise h2.exceptions.ProtocolError("Invalid stream ID for peer.")
        stream = h2.stream.H2Stream(
            stream_id, config=self.config,
            inbound_window_size=self.local_settings.initial_window_size,
            outbound_window_size=self.remote_settings.initial_window_size)
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[stream_id] = stream
        self._counted[stream_id % 2] += 1  # (a bound until the next walk: _open_streams)
        if outbound:
            self.highest_outbound_stream_id = stream_id
        else:
            self.highest_inbound_stream_id = stream_id
        return stream

    def send_headers(self, stream_id: int, headers: Any, end_stream: bool = False,
                     priority_weight: int | None = None, priority_depends_on: int | None = None,
                     priority_exclusive: bool | None = None) -> None:
        """h2's (4.x) connection and stream steps in one function (three header blocks are
        sent per relayed call), without their log lines; with priority, h2's own."""
        if (priority_weight is not None or priority_depends_on is not None
                or priority_exclusive is not None):
            super().send_headers(stream_id, headers, end_stream, priority_weight,
                                 priority_depends_on, priority_exclusive)
            return
        stream = self.streams.get(stream_id)
        if stream is None:  # (h2's: check we can open the stream; h2's count of the open
            # ones is at most len(streams): it is asked only when that could reach the limit)
            max_open = self.remote_settings.max_concurrent_streams
            if len(self.streams) >= max_open:
                value = self.open_outbound_streams
                if value + 1 > max_open:
                    raise h2.exceptions.TooManyStreamsError(
                        f"Max outbound streams is {max_open}, {value} open")
        connection = self.state_machine  # (its step, when it changes nothing: inline)
        if (connection.state, _SEND_HEADERS) not in h2frames._STAYS:
            connection.process_input(_SEND_HEADERS)
        if stream is None:
            stream = self._begin_new_stream(
                stream_id, h2.connection.AllowedStreamIDs(self.config.client_side))
        # the stream's (h2.stream.H2Stream.send_headers)
        machine = stream.state_machine
        fields: Fields | None = None  # (a list that carries its Fields: h2's scans asked once)
        bytes_headers: list[Any]
        if type(headers) is BytesPairs:  # (h2frames.utf8_encode_headers's answer for it)
            bytes_headers = headers
            fields = headers._fields
            if fields is not None and fields.length != len(headers):
                fields = None
        else:
            bytes_headers = h2.stream.utf8_encode_headers(headers)
        input_ = _STREAM_SEND_HEADERS
        informational: bool | None
        if machine.client:
            informational = False
        elif fields is None:
            informational = h2.stream.is_informational_response(bytes_headers)
        else:
            informational = fields.informational
            if informational is None:
                informational = fields.informational = _is_informational(fields.pairs)
        if informational:
            if end_stream:
                raise h2.exceptions.ProtocolError(
                    "Cannot set END_STREAM on informational responses.")
            input_ = _SEND_INFORMATIONAL
        events = machine.process_input(input_)
        config = self.config
        block: bytes | None = None  # a block that fits one frame: the frame's bytes made here
        frames: list[Any] | None = None
        if config.normalize_outbound_headers or config.validate_outbound_headers:
            frames = stream._build_headers_frames(
                bytes_headers, self.encoder, hyperframe.frame.HeadersFrame(stream_id),
                stream._build_hdr_validation_flags(events))
        else:
            block = (self.encoder.encode(bytes_headers) if fields is None
                     else self.encoder.encode_fields(fields))
            if not 0 < len(block) <= (stream.max_outbound_frame_size or 0):
                frames = h2frames.headers_frames(stream, block,
                                                 hyperframe.frame.HeadersFrame(stream_id))
        if end_stream:
            machine.process_input(_SEND_END_STREAM)
            if frames is not None:
                set.add(frames[0].flags, "END_STREAM")  # (FrameFlags: a set, the flag valid)
        if machine.trailers_sent and not end_stream:
            raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set.")
        if machine.client and stream._authority is None:
            stream._authority = h2.stream.authority_from_headers(bytes_headers)
        if fields is None:
            stream.request_method = h2.stream.extract_method_header(bytes_headers)
        else:
            method = fields.method
            if method is UNKNOWN:
                method = fields.method = _extract_method(fields.pairs)
            stream.request_method = method
        if frames is not None:
            self._prepare_for_sending(frames)
        elif block is not None:  # one HEADERS frame, END_HEADERS (and END_STREAM): its bytes
            size = len(block)
            out = self._data_to_send
            out += _FRAME_HEADER.pack((size >> 8) & 0xFFFF, size & 0xFF, _HEADERS_TYPE,
                                      _END_STREAM_HEADERS if end_stream else _END_HEADERS,
                                      stream_id & 0x7FFFFFFF)
            out += block

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False,
                  pad_length: Any = None) -> None:
        """h2's (4.x) connection and stream steps in one function (a relayed call sends its
        DATA this way each way), without their log lines; h2's own for padding, a window or
        frame size the data does not fit (which raises h2's error) or a stream h2 forgot."""
        stream = self.streams.get(stream_id)
        size = len(data)
        if (stream is None or pad_length is not None or size > self.max_outbound_frame_size
                or (size > 0 and (size > self.outbound_flow_control_window
                                  or size > stream.outbound_flow_control_window))):
            super().send_data(stream_id, data, end_stream, pad_length)
            return
        connection = self.state_machine  # (its step, when it changes nothing: inline)
        if (connection.state, _SEND_DATA) not in h2frames._STAYS:
            connection.process_input(_SEND_DATA)
        # the stream's (h2.stream.H2Stream.send_data)
        machine = stream.state_machine  # (a step that makes no event, as h2frames'
        step = _STREAM_STEPS.get((machine.state, _STREAM_SEND_DATA))  # process_input: inline)
        if step is not None and step[0] is None:
            machine.state = step[1]
        else:
            machine.process_input(_STREAM_SEND_DATA)
        if end_stream:
            step = _STREAM_STEPS.get((machine.state, _SEND_END_STREAM))
            if step is not None and step[0] is None:  # (a request's end; a response's makes
                machine.state = step[1]  # an event: h2's step)
            else:
                machine.process_input(_SEND_END_STREAM)
        stream.outbound_flow_control_window -= size  # (no padding: its flow-controlled length)
        out = self._data_to_send  # the DATA frame's bytes, made here (no padding, one frame)
        out += _FRAME_HEADER.pack((size >> 8) & 0xFFFF, size & 0xFF, _DATA_TYPE,
                                  _END_STREAM if end_stream else 0, stream_id & 0x7FFFFFFF)
        out += data
        self.outbound_flow_control_window -= size

    def _receive_headers_frame(self, frame: Any) -> Any:
        """h2's (4.x) connection and stream steps in one function (three header blocks are
        received per relayed call), without their log lines; with PRIORITY, h2's own."""
        flags = frame.flags
        if "PRIORITY" in flags:
            return super()._receive_headers_frame(frame)
        return self._headers_in(frame.stream_id, "END_STREAM" in flags, frame.data)

    def _headers_in(self, stream_id: int, end: bool, block: bytes) -> Any:
        """_receive_headers_frame from the frame's stream, END_STREAM flag and block."""
        stream = self.streams.get(stream_id)
        if stream is None:  # (h2's check, asked as in send_headers)
            max_open = self.local_settings.max_concurrent_streams
            if len(self.streams) >= max_open:
                value = self.open_inbound_streams
                if value + 1 > max_open:
                    raise h2.exceptions.TooManyStreamsError(
                        f"Max inbound streams is {max_open}, {value} open")
        try:  # (h2.connection._decode_headers, the list as its Fields: h2frames)
            fields = self.decoder.fields(block)
        except hpack.OversizedHeaderListError as e:
            raise h2.exceptions.DenialOfServiceError(f"Oversized header block: {e}") from e
        except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError) as e:
            raise h2.exceptions.ProtocolError(f"Error decoding header block: {e}") from e
        connection = self.state_machine  # (its step, when it changes nothing: inline)
        events = ([] if (connection.state, _RECV_HEADERS) in h2frames._STAYS
                  else connection.process_input(_RECV_HEADERS))
        if stream is None:
            stream = self._begin_new_stream(
                stream_id, h2.connection.AllowedStreamIDs(not self.config.client_side))
        # the stream's (h2.stream.H2Stream.receive_headers); h2's scans of the list asked
        # once per Fields
        informational = fields.informational
        if informational is None:
            informational = fields.informational = _is_informational(fields.pairs)
        if informational:
            if end:
                raise h2.exceptions.ProtocolError(
                    "Cannot set END_STREAM on informational responses")
            input_ = _RECV_INFORMATIONAL
        else:
            input_ = _STREAM_RECV_HEADERS
        machine = stream.state_machine
        received = machine.process_input(input_)
        event: Any = received[0]
        if end:
            ended = machine.process_input(_RECV_END_STREAM)
            event.stream_ended = ended[0]
            received += ended
        if stream.request_method == b"HEAD":  # (h2's _initialize_content_length)
            stream._expected_content_length = 0
        elif fields.content_length is UNKNOWN:
            _initialize_content_length(stream, fields.pairs)  # (raises for one h2 refuses)
            fields.content_length = stream._expected_content_length
        else:
            stream._expected_content_length = fields.content_length
        if type(event) is h2.events.TrailersReceived and not end:
            raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set")
        flags = h2frames._FLAGS.get((type(event), machine.client))  # (h2frames'
        if flags is None:  # build_hdr_validation_flags, inline)
            flags = stream._build_hdr_validation_flags(received)
        event.headers = h2checks.received(stream, fields, flags, self.config.header_encoding)
        return [], events + received

    def _receive_data_frame(self, frame: Any) -> Any:
        """h2's (4.x) connection and stream steps in one function (a relayed call receives
        its DATA this way each way), without their log lines; h2's own for a padded frame or
        a stream h2 forgot (which it answers)."""
        flags = frame.flags
        if "PADDED" in flags:
            return super()._receive_data_frame(frame)
        return self._data_in(frame.stream_id, "END_STREAM" in flags, frame.data)

    def _data_in(self, stream_id: int, end: bool, data: bytes) -> Any:
        """_receive_data_frame from the frame's stream, END_STREAM flag and data (no
        padding); h2's own for a stream h2 forgot (which it answers)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return super()._receive_data_frame(_data_frame(stream_id, end, data))
        size = len(data)  # (its flow-controlled length: no padding)
        connection = self.state_machine  # (its step, when it changes nothing: inline)
        events = ([] if (connection.state, _RECV_DATA) in h2frames._STAYS
                  else connection.process_input(_RECV_DATA))
        manager = self._inbound_flow_control_window_manager  # (h2's window_consumed, inline)
        manager.current_window_size -= size
        if manager.current_window_size < 0:
            raise h2.exceptions.FlowControlError(_SHRUNK)
        try:  # the stream's (h2.stream.H2Stream.receive_data)
            machine = stream.state_machine
            received = machine.process_input(_STREAM_RECV_DATA)
            event: Any = received[0]
            manager = stream._inbound_window_manager  # (window_consumed's, as above)
            manager.current_window_size -= size
            if manager.current_window_size < 0:
                raise h2.exceptions.FlowControlError(_SHRUNK)
            if stream._expected_content_length is None:  # (h2's _track_content_length:
                stream._actual_content_length += size  # without a content-length, a count)
            else:
                stream._track_content_length(size, end)
            if end:
                ended = machine.process_input(_RECV_END_STREAM)
                event.stream_ended = ended[0]
                received += ended
        except h2.exceptions.StreamClosedError as e:
            return self._handle_data_on_closed_stream(events, e, _data_frame(stream_id, end, data))
        event.data = data
        event.flow_controlled_length = size
        return [], events + received

    def _open_streams(self, remainder: int) -> int:
        self._asks += 1
        last = self._counted[remainder]
        outbound = remainder == int(self.config.client_side)
        limit = (self.remote_settings if outbound else self.local_settings
                 ).max_concurrent_streams
        if self._asks % self.PURGE_EVERY and last + self.PURGE_EVERY < limit:
            return last
        self._counted[remainder] = count = super()._open_streams(remainder)
        return count


class H2Endpoint(asyncio.Protocol):
    """One HTTP/2 connection, either side; subclasses say what a new stream means.

    With `limits` (the server side), a client that misbehaves is sent away: see h2limits."""

    def __init__(self, client_side: bool, limits: H2Limits | None = None,
                 trusted: bool = False) -> None:
        # what we send was validated as it arrived (or is built by devamb): not again on the way
        # out; a `trusted` peer's headers (the upstream's answers: the client's h2 checks them
        # as they reach it) are not validated nor normalized as they arrive either
        config = h2frames.Config(client_side=client_side, header_encoding=None,
                                 validate_outbound_headers=False,
                                 normalize_outbound_headers=False,  # h2hpack's
                                 validate_inbound_headers=not trusted,
                                 normalize_inbound_headers=not trusted)
        self.conn: h2.connection.H2Connection = _Connection(config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.closed = asyncio.Event()
        self.lost = False  # `closed` is set (read as a bool on every send and acknowledgement)
        self.paused = False  # `_writable` is clear: the transport's buffer is full
        self.goaway = False  # the peer sent GOAWAY: no new streams on this connection
        self._writable = asyncio.Event()
        self._writable.set()
        self.limits = limits
        self.ending = False  # we sent a GOAWAY and close the connection
        self._timers: list[asyncio.TimerHandle] = []
        # the guard's state (server side; set by _guard_start)
        self._loop = asyncio.get_running_loop()  # protocols are made by the loop's factory
        self._flushing = False  # a write is due at the end of this turn of the loop
        self._unsent = 0  # DATA bytes queued in h2 since the last write
        self._ended: list[int] = []  # ids of the streams forgotten since the last write
        self._credit = b""  # WINDOW_UPDATE frames received, taken in soon (_hold_credit)
        self._made = self._last_in = 0.0
        self._acked = False  # the client acknowledged our SETTINGS
        self._headers_since: float | None = None  # a header block waits for END_HEADERS
        self._owed = 0  # SETTINGS/PING answers queued while the client does not read
        self._refusing = False
        self._buckets: dict[str, Bucket] = {}
        self._tick = 1.0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        client = bool(self.conn.config.client_side)
        limits = self.limits or h2limits.DEFAULT
        codes = h2.settings.SettingCodes
        settings = {
            codes.MAX_CONCURRENT_STREAMS: limits.max_streams,
            codes.MAX_HEADER_LIST_SIZE: limits.max_header_list,
        }
        if client:
            settings[codes.ENABLE_PUSH] = 0
        self.conn.local_settings = h2.settings.Settings(client=client, initial_values=settings)
        self.conn.initiate_connection()  # advertises `settings`
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.conn.decoder.max_header_list_size = limits.max_header_list
        if self.limits is not None:
            # h2 would end the whole connection for a stream over the limit: we refuse that
            # stream alone (RFC 9113 5.1.2), so h2 itself is told there is none
            settings[codes.MAX_CONCURRENT_STREAMS] = UNLIMITED
            self.conn.local_settings = h2.settings.Settings(client=client,
                                                            initial_values=settings)
            self._guard_start(self.limits)
        self.flush_now()

    def data_received(self, data: bytes) -> None:
        if self.ending:
            return
        if self._credit:  # WINDOW_UPDATEs held back from the last read: taken in first
            data, self._credit = self._credit + data, b""
        elif len(data) > 13 and data[-10] == WINDOW_UPDATE_TYPE:
            data = self._hold_credit(data)
        if self.limits is not None:
            self._last_in = self._loop.time()
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = int(getattr(exc, "error_code", PROTOCOL_ERROR) or PROTOCOL_ERROR)
            self.send_away(code, _why(exc))
            return
        handlers = _HANDLERS
        for event in events:
            # (by the event's exact class: h2's events are not subclassed; one look-up, not a
            # chain of isinstance checks, for each of the ~10 events of a relayed call)
            handler = handlers.get(type(event))
            if handler is not None:
                getattr(self, handler)(event)
                if self.ending:
                    return
        if self.limits is not None and self._headers_since is None:
            if _pending_header_block(self.conn):
                self._headers_since = self._last_in
        elif self.limits is not None and not _pending_header_block(self.conn):
            self._headers_since = None
        if self.conn._data_to_send:  # (flush's own test: most reads ask for no answer)
            self.flush()
        if self._credit:  # after what the events woke (the relay's tasks)
            self._loop.call_soon(self._take_credit)

    def _hold_credit(self, data: bytes) -> bytes:
        """The frames of a read that ends with WINDOW_UPDATEs after other frames (a gRPC
        server's answer ends with its credit for the request), without those: they are taken
        in at the end of this turn of the loop, once the relay has passed on what the others
        brought. Credit only widens what devamb may send: taking it a little later changes
        nothing else, and it is taken before anything the peer sends next.

        The run is read from the end, 13 bytes a frame (a WINDOW_UPDATE's length is 4), not
        by walking every frame of the read: the last bytes of another frame that look like one
        are held as well, and only wait for the end of the turn (what is held is given to h2
        first, in order, as the frame buffer takes a frame cut short by a read)."""
        buffer = self.conn.incoming_buffer
        if buffer._data or buffer._preamble_len or buffer._headers_buffer:
            return data  # (the read does not start a frame)
        tail = len(data)  # where the run of WINDOW_UPDATEs starts
        while (tail >= 13 and data[tail - 10] == WINDOW_UPDATE_TYPE
               and data[tail - 13:tail - 10] == WINDOW_UPDATE_LENGTH):
            tail -= 13
        if tail == len(data) or tail == 0:  # none, or WINDOW_UPDATEs only
            return data
        self._credit = data[tail:]  # (data_received schedules it after the others' events)
        return data[:tail]

    def _take_credit(self) -> None:
        if self._credit and not self.lost:
            self.data_received(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self.goaway = True
        for timer in self._timers:
            timer.cancel()
        for stream in list(self.streams.values()):
            self._gone(stream, CANCEL, "the connection was lost", lost=True)
        self.streams.clear()
        self._writable.set()
        self.paused = False
        self.lost = True
        self.closed.set()

    def pause_writing(self) -> None:
        self._writable.clear()
        self.paused = True

    def resume_writing(self) -> None:
        self._writable.set()
        self.paused = False
        self._owed = 0

    # -- for streams ----------------------------------------------------------------------------

    def flush(self, size: int = 0, end: bool = False, more: bool = False) -> None:
        """Write what h2 has queued: at the end of this turn of the loop, so that the frames
        of many streams go out in one write, or now once `size` bytes of DATA are waiting, or
        now when a stream's last frame is queued (`end`) and no other stream could share the
        write (one call at a time: its end leaves before devamb records the call).

        `more`: the caller queues another frame before it yields to the loop, and flushes
        then: nothing is scheduled for this one (the scheduled write would find the queue
        written by then, a turn of the loop and an epoll call for nothing)."""
        self._unsent += size
        if self._unsent >= WRITE_NOW or (end and len(self.streams) <= 1):
            self.flush_now()
        elif not more and not self._flushing and self.conn._data_to_send:  # (h2's queue: a
            # read that asks for no answer, as most do, schedules no write)
            self._flushing = True
            self._loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        self._flushing = False
        self._unsent = 0
        conn = self.conn  # (h2's data_to_send(), inline: a write or two per call)
        data = bytes(conn._data_to_send)
        conn._data_to_send = bytearray()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self._ended:
            self._drop_ended()

    def _drop_ended(self) -> None:
        """h2 keeps a closed stream until a count of the open ones walks past it
        (_Connection._open_streams, asked for every new stream): the streams devamb is done
        with are dropped as that walk would, after a write (off a call's path), so that the
        walk visits the streams in flight only."""
        conn = self.conn
        for stream_id in self._ended:
            done = conn.streams.get(stream_id)
            if done is not None and done.state_machine.state is _CLOSED:
                del conn.streams[stream_id]
                conn._closed_streams[stream_id] = done.state_machine.stream_closed_by
        self._ended.clear()

    async def writable(self) -> None:
        if self.paused:
            await self._writable.wait()
        if self.lost:
            raise StreamGone(CANCEL, "the connection was lost")

    def ack(self, stream_id: int, size: int) -> None:
        if size <= 0 or self.lost:
            return
        try:
            self.conn.acknowledge_received_data(size, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        if self.conn._data_to_send:  # (flush's own test: most acknowledgements send nothing)
            self.flush()

    def settle(self, stream: H2Stream) -> None:
        """Forget a stream once both sides ended it."""
        if stream.sent_end and stream.got_end:
            self.forget(stream)

    def forget(self, stream: H2Stream) -> None:
        self.streams.pop(stream.id, None)
        self._ended.append(stream.id)  # dropped from h2's streams after the next write
        if not self.streams and self.limits is not None:
            self._last_in = self._loop.time()  # idle from now on

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.conn.close_connection()
                self.flush_now()
            except h2.exceptions.ProtocolError:
                pass
            self.transport.close()

    # -- hooks ----------------------------------------------------------------------------------

    def new_stream(self, stream: H2Stream) -> None:
        """The peer opened `stream` (server side)."""

    def protocol_error(self, reason: str) -> None:
        """The peer broke HTTP/2 or a limit; `reason` says why and what devamb answered."""

    # -- limits (server side) -------------------------------------------------------------------

    def send_away(self, code: int, reason: str) -> None:
        """End the connection with GOAWAY `code` (`reason` as its debug data) unless h2 sent
        its own for a protocol error; streams in flight are gone. A client that does not read
        is cut after a grace."""
        if self.ending:
            return
        self.ending = True
        self.goaway = True
        if self.conn.state_machine.state != h2.connection.ConnectionState.CLOSED:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection(code, additional_data=reason.encode()[:200])
        self.flush_now()
        self.protocol_error(f"{reason}; sent GOAWAY {code_name(code)}")
        for stream in list(self.streams.values()):
            self._gone(stream, CANCEL, f"the connection was closed: {reason}", lost=True)
        self.streams.clear()
        if self.transport is not None:
            self.transport.close()
            if self.limits is not None:
                self._timers.append(self._loop.call_later(self.limits.close_grace,
                                                          self.transport.abort))

    def _guard_start(self, limits: H2Limits) -> None:
        now = self._loop.time()
        self._made = self._last_in = now
        self._buckets = {name: Bucket(*rule, now) for name, rule in (
            ("settings", limits.settings), ("pings", limits.pings), ("resets", limits.resets),
            ("refused", limits.refused))}
        shortest = min(limits.handshake_timeout, limits.headers_timeout, limits.idle_timeout)
        self._tick = min(1.0, max(0.02, shortest / 4))
        self._timers.append(self._loop.call_later(self._tick, self._watch))

    def _watch(self) -> None:
        limits = self.limits
        if limits is None or self.ending or self.closed.is_set():
            return
        now = self._loop.time()
        if not self._acked and now - self._made > limits.handshake_timeout:
            self.send_away(SETTINGS_TIMEOUT, f"no HTTP/2 preface and SETTINGS acknowledgement "
                                             f"in {limits.handshake_timeout:g}s")
        elif self._headers_since is not None and now - self._headers_since > limits.headers_timeout:
            self.send_away(ENHANCE_YOUR_CALM, f"a header block without END_HEADERS for "
                                              f"{limits.headers_timeout:g}s")
        elif not self.streams and now - self._last_in > limits.idle_timeout:
            self.send_away(NO_ERROR, f"idle for {limits.idle_timeout:g}s")
        else:
            self._timers = [self._loop.call_later(self._tick, self._watch)]

    def _spend(self, name: str, what: str) -> bool:
        """Count one `what` against its bucket; False (and GOAWAY) when the client floods."""
        bucket = self._buckets[name]
        if bucket.take(self._loop.time()):
            return True
        self.send_away(ENHANCE_YOUR_CALM, f"{what} flood (over {bucket.burst:g} at once, "
                                          f"{bucket.rate:g}/s after)")
        return False

    def _owe(self, what: str) -> None:
        """An answer (ACK) is queued; too many while the client does not read: GOAWAY."""
        if self._writable.is_set():
            return
        self._owed += 1
        assert self.limits is not None
        if self._owed > self.limits.unanswered:
            self.send_away(ENHANCE_YOUR_CALM, f"{self._owed} {what} answers unread")

    def _refuse(self, stream_id: int) -> None:
        """A stream beyond the limit of concurrent streams: RST_STREAM REFUSED_STREAM."""
        if not self._spend("refused", "streams beyond the limit"):
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, REFUSED_STREAM)
        if not self._refusing:
            self._refusing = True
            assert self.limits is not None
            self.protocol_error(f"more than {self.limits.max_streams} concurrent streams; "
                                f"sent RST_STREAM REFUSED_STREAM (the connection goes on)")

    # -- events ---------------------------------------------------------------------------------

    def _on_data(self, event: h2.events.DataReceived) -> None:
        receiver = self.streams.get(event.stream_id or 0)
        if receiver is not None:
            receiver.put(Inbound("data", None, event.data or b"",  # (positional: cheaper)
                                 event.flow_controlled_length or 0))
        else:
            self.ack(event.stream_id or 0, event.flow_controlled_length or 0)

    def _on_ended(self, event: h2.events.StreamEnded) -> None:
        ended = self.streams.get(event.stream_id or 0)
        if ended is not None:
            ended.got_end = True
            ended.put(_END)
            if ended.sent_end and not ended.reader_settles:  # (an upstream's answer:
                self._loop.call_soon(self.settle, ended)  # forgotten once its reader passed it on)

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        if not event.stream_id:
            for waiting in self.streams.values():
                waiting.window_opened()
        elif event.stream_id in self.streams:
            self.streams[event.stream_id].window_opened()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        # (our count, not h2's: h2 has already taken every frame of this read)
        if self.limits is not None and len(self.streams) >= self.limits.max_streams:
            self._refuse(event.stream_id or 0)
            return
        stream = H2Stream(self, event.stream_id)
        self.streams[event.stream_id] = stream
        stream.ended_at_headers = event.stream_ended is not None
        headers = event.headers  # (h2checks.received's BytesPairs, made for this event)
        stream.put(Inbound("headers", headers if type(headers) is BytesPairs
                           else _pairs(headers)))
        self.new_stream(stream)

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        headers = event.headers  # (as _on_request's)
        self._put(event.stream_id, Inbound("headers", headers if type(headers) is BytesPairs
                                           else _pairs(headers)))

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        headers = event.headers  # (as _on_request's)
        self._put(event.stream_id, Inbound("trailers", headers if type(headers) is BytesPairs
                                           else _pairs(headers)))

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        if self.limits is not None and event.remote_reset and not self._spend(
                "resets", "stream reset"):
            return
        reset = self.streams.pop(event.stream_id or 0, None)
        if reset is not None:
            code = int(event.error_code or 0)
            self._gone(reset, code, f"the peer reset the stream (code {code})")

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        if self.limits is not None:
            if not self._spend("settings", "SETTINGS"):
                return
            self._owe("SETTINGS")
        for stream in self.streams.values():
            stream.window_opened()

    def _on_ping(self, event: h2.events.PingReceived) -> None:
        if self.limits is not None and self._spend("pings", "PING"):
            self._owe("PING")

    def _on_settings_acked(self, event: h2.events.SettingsAcknowledged) -> None:
        self._acked = True

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
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
        stream.window_opened()


# the H2Endpoint method that handles each h2 event (others are ignored)
_HANDLERS: dict[type[h2.events.Event], str] = {
    h2.events.DataReceived: "_on_data", h2.events.StreamEnded: "_on_ended",
    h2.events.WindowUpdated: "_on_window", h2.events.RequestReceived: "_on_request",
    h2.events.ResponseReceived: "_on_response", h2.events.TrailersReceived: "_on_trailers",
    h2.events.StreamReset: "_on_reset", h2.events.RemoteSettingsChanged: "_on_settings",
    h2.events.PingReceived: "_on_ping", h2.events.SettingsAcknowledged: "_on_settings_acked",
    h2.events.ConnectionTerminated: "_on_goaway",
}


def _short_repr(frame: hyperframe.frame.Frame) -> str:
    return f"{type(frame).__name__}(stream_id={frame.stream_id})"


# h2 builds repr(frame) of every frame it receives for a trace log that is off (h2's
# DummyLogger): a frame's full repr (flags, body) was ~5 % of the relay's CPU
hyperframe.frame.Frame.__repr__ = _short_repr  # type: ignore[method-assign]
h2checks.install()  # a header list h2 checked once is not checked again (h2checks)
h2frames.install()  # flags read and written at once, bytes headers not rebuilt (h2frames)


def _why(exc: Exception) -> str:
    """A protocol error as a line for the developer."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, h2.exceptions.DenialOfServiceError) and "header" in text.lower():
        return f"request headers over the limit ({text})"
    return f"broke HTTP/2 or does not speak it ({text})"


def _pending_header_block(conn: h2.connection.H2Connection) -> bool:
    """A HEADERS frame arrived without END_HEADERS and its CONTINUATION is awaited (h2 keeps
    the frames in its frame buffer: read defensively, it is not public)."""
    return bool(getattr(conn.incoming_buffer, "_headers_buffer", None))


def _pairs(headers: object) -> H2Headers:
    """h2 gives (bytes, bytes) pairs with header_encoding=None (hpack decodes to bytes)."""
    if type(headers) is BytesPairs:  # (h2checks.received's: made for this event)
        return headers
    assert isinstance(headers, list)
    return BytesPairs(map(tuple, headers))  # (hpack's HeaderTuples made plain tuples)


_FLAG_NAMES: dict[int, tuple[object, set[str]]] = {}  # by id of a frame class's defined_flags


def _flags_init(self: hyperframe.flags.Flags, defined_flags: Any) -> None:
    """hyperframe builds the set of a frame's flag names for every frame it makes (~3 % of the
    relay's CPU): here once per frame class, shared (hyperframe only reads it)."""
    known = _FLAG_NAMES.get(id(defined_flags))
    if known is None or known[0] is not defined_flags:
        known = _FLAG_NAMES[id(defined_flags)] = (defined_flags,
                                                  {flag.name for flag in defined_flags})
    self._valid_flags = known[1]
    self._flags = set()


hyperframe.flags.Flags.__init__ = _flags_init  # type: ignore[method-assign]
