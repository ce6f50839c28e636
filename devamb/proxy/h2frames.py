"""hyperframe's and h2's per-frame helpers, made cheaper for a relay (installed by h2conn).

Same bytes and same frames, less Python per frame: a frame's flags are a set (hyperframe's
Flags is a Python MutableSet: h2 and hyperframe ask it ~20 times per relayed request, each a
Python call), read and written at once when a frame is parsed or serialized, and a header
list that is all bytes pairs already (what devamb sends) is not rebuilt by h2's
`utf8_encode_headers`; h2's state machines look their transitions up by (state, input) enum
pairs, which Enum hashes in Python (by name): here by identity, in C (members are singletons
and compare by identity already), the tables rebuilt for the new hashes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import h2.frame_buffer
import h2.settings
import h2.stream
import h2.utilities
import hyperframe.flags
import hyperframe.frame

_VALID: dict[int, tuple[object, frozenset[str]]] = {}  # by id of a frame class's flags


class FrameFlags(set[str]):
    """hyperframe's Flags as a set (`in` at C speed) that refuses a flag its frame does not
    define, as Flags does."""

    __slots__ = ("_valid_flags",)

    def __init__(self, defined_flags: Iterable[hyperframe.flags.Flag]) -> None:
        # (no set.__init__: a new set is empty)
        known = _VALID.get(id(defined_flags))
        if known is None or known[0] is not defined_flags:  # (once per frame class)
            known = _VALID[id(defined_flags)] = (defined_flags,
                                                 frozenset(flag.name for flag in defined_flags))
        self._valid_flags = known[1]

    def add(self, value: str) -> None:
        if value not in self._valid_flags:
            raise ValueError(f"Unexpected flag: {value}. Valid flags are: "
                             f"{set(self._valid_flags)}")
        set.add(self, value)

    def __repr__(self) -> str:
        return repr(sorted(self))


def _flags_of(frame_class: type[hyperframe.frame.Frame]) -> type[FrameFlags]:
    """FrameFlags for one frame class, made in C (no Python __init__): its valid flags a class
    attribute (the slot of FrameFlags is shadowed), for the frames of every call."""
    return type(f"{frame_class.__name__}Flags", (FrameFlags,), {
        "__slots__": (), "__init__": set.__init__,
        "_valid_flags": frozenset(flag.name for flag in frame_class.defined_flags)})


_HeadersFlags = _flags_of(hyperframe.frame.HeadersFrame)
_DataFlags = _flags_of(hyperframe.frame.DataFrame)
_HEADER = hyperframe.frame._STRUCT_HBBBL  # length (24 bits), type, flags, stream id
_utf8_encode_headers = h2.utilities.utf8_encode_headers


_BITS: dict[type, dict[str, int]] = {}  # a frame class's flag bits by name
_NAMES: dict[type, list[tuple[str, ...]]] = {}  # a frame class's flag names by flag byte


def _tables(frame_class: type[hyperframe.frame.Frame]) -> None:
    defined = frame_class.defined_flags
    _BITS[frame_class] = {flag: bit for flag, bit in defined}
    _NAMES[frame_class] = [tuple(flag for flag, bit in defined if byte & bit)
                           for byte in range(256)]


def serialize(self: hyperframe.frame.Frame) -> bytes:
    body = self.serialize_body()
    self.body_len = size = len(body)
    names = self.flags
    flags = 0
    if names:
        bits = _BITS.get(type(self))
        if bits is None:
            _tables(type(self))
            bits = _BITS[type(self)]
        for name in names:
            flags |= bits[name]
    return _HEADER.pack((size >> 8) & 0xFFFF, size & 0xFF, self.type, flags,
                        self.stream_id & 0x7FFFFFFF) + body


def parse_flags(self: hyperframe.frame.Frame, flag_byte: int) -> Any:
    if flag_byte:
        names: Any = self.flags  # (the names are the frame's own defined flags: valid)
        for flag, bit in self.defined_flags:
            if flag_byte & bit:
                set.add(names, flag)
    return self.flags


_FRAMES = hyperframe.frame.FRAMES
_unpack_header = _HEADER.unpack_from
_next_frame = h2.frame_buffer.FrameBuffer.__next__
# frames that may start or continue a header block: h2's own bookkeeping for them
_PLAIN = frozenset((hyperframe.frame.HeadersFrame, hyperframe.frame.DataFrame))
_PADDED_PRIORITY = 0x08 | 0x20  # (the flags that add fields before a HEADERS or DATA body)
_BLOCKS = frozenset((hyperframe.frame.HeadersFrame, hyperframe.frame.PushPromiseFrame,
                     hyperframe.frame.ContinuationFrame))


def next_frame(self: h2.frame_buffer.FrameBuffer) -> hyperframe.frame.Frame:
    """h2's FrameBuffer.__next__ (see take_frame)."""
    frame = take_frame(self)
    if frame is None:
        raise StopIteration
    return frame


def take_frame(self: h2.frame_buffer.FrameBuffer) -> hyperframe.frame.Frame | None:
    """h2's FrameBuffer.__next__ for a whole frame of a known type, in one function (h2 copies
    the 9-byte header and makes four calls, and hyperframe walks the defined flags), None
    where h2's raises StopIteration (no whole frame yet). Anything else (a partial frame, an
    extension frame, a frame over the size limit, a header block in CONTINUATIONs, a frame
    hyperframe refuses) goes to h2's own, which raises h2's error; nothing is consumed before
    the frame is whole and parsed."""
    data = self._data
    if len(data) < 9:  # (h2's first step: the end of every read)
        return None
    if self._headers_buffer:
        return _h2_next(self)
    high, low, kind, flag_byte, stream_id = _unpack_header(data)
    end = (high << 8) + low + 9
    frame_class = _FRAMES.get(kind)
    if frame_class is None or len(data) < end or end - 9 > self.max_frame_size:
        return _h2_next(self)
    try:
        frame = frame_class(stream_id & 0x7FFFFFFF)
        if flag_byte:
            names = _NAMES.get(frame_class)
            if names is None:
                _tables(frame_class)
                names = _NAMES[frame_class]
            flags: Any = frame.flags  # (FrameFlags: a set; anything else raises, to h2's)
            set.update(flags, names[flag_byte])
        if frame_class in _PLAIN and not flag_byte & _PADDED_PRIORITY:
            # (HEADERS or DATA without padding nor priority: hyperframe's parse_body keeps
            # the body as it is)
            frame.data = bytes(data[9:end])  # type: ignore[attr-defined]
            frame.body_len = end - 9
        else:
            frame.parse_body(memoryview(data[9:end]))  # (a copy, as h2's: `data` shrinks below)
    except Exception:  # (h2's own path raises h2's error for it)
        return _h2_next(self)
    del data[:end]
    if frame_class in _BLOCKS:
        block = self._update_header_buffer(frame)
        return block if block is not None else take_frame(self)
    return frame


def _h2_next(self: h2.frame_buffer.FrameBuffer) -> hyperframe.frame.Frame | None:
    try:
        return _next_frame(self)
    except StopIteration:
        return None


_headers_init = hyperframe.frame.HeadersFrame.__init__
_data_init = hyperframe.frame.DataFrame.__init__


def headers_init(self: hyperframe.frame.HeadersFrame, stream_id: int, data: bytes = b"",
                 **kwargs: Any) -> None:
    """HeadersFrame(stream_id[, data]) in one step, not through the four __init__ of its
    bases (what h2 and the frame parser make); with more arguments, hyperframe's own."""
    if kwargs or not stream_id:  # (a stream id of 0: hyperframe's error)
        _headers_init(self, stream_id, data, **kwargs)
        return
    self.stream_id = stream_id
    self.flags = _HeadersFlags()  # type: ignore[assignment,call-arg]
    self.body_len = 0
    self.pad_length = 0
    self.depends_on = 0
    self.stream_weight = 0
    self.exclusive = False
    self.data = data


def data_init(self: hyperframe.frame.DataFrame, stream_id: int, data: bytes = b"",
              **kwargs: Any) -> None:
    """DataFrame(stream_id[, data]) in one step (see headers_init)."""
    if kwargs or not stream_id:
        _data_init(self, stream_id, data, **kwargs)
        return
    self.stream_id = stream_id
    self.flags = _DataFlags()  # type: ignore[assignment,call-arg]
    self.body_len = 0
    self.pad_length = 0
    self.data = data


UNKNOWN: Any = object()  # (a Fields answer not worked out yet, where None is an answer)


class Fields:
    """One header list as devamb keeps it, its pairs never changed: made once per distinct
    block received (the HPACK decoder's memory: a client's repeated requests, an upstream's
    repeated answers, h2conn's `_headers_in`) and once per list devamb builds and reuses (the
    upstream's request headers), and carried by the BytesPairs made from it (their `_fields`).
    What a call asks of its lists on the way (h2's scans and checks, the record's text, the
    index by name, the HPACK block) is worked out once per list and found through this object,
    by its identity: before, the caches on the way hashed whole lists ~20 times a call.
    Every answer is h2's (or hpack's) own for these pairs; one h2 refuses is never kept."""

    __slots__ = ("content_length", "index", "informational", "length", "method", "pairs",
                 "received", "text", "values")

    def __init__(self, pairs: Any) -> None:
        self.pairs = pairs  # (a tuple, or hpack's decoded list: never changed, never handed out)
        self.length = len(pairs)
        self.index: dict[bytes, bytes] | None = None  # value of the first field of a name
        self.text: list[tuple[str, str]] | None = None  # (h2conn.as_text)
        self.values: dict[bytes, str] | None = None  # index's values as text (h2conn.header)
        self.informational: bool | None = None  # (h2's is_informational_response)
        self.method: Any = UNKNOWN  # (h2's extract_method_header)
        self.content_length: Any = UNKNOWN  # (h2's _initialize_content_length)
        # (flags, normalize, validate, the list h2's received-headers steps made of it, kept)
        self.received: tuple[Any, bool, bool, Fields] | None = None


class BytesPairs(list[tuple[bytes, bytes]]):
    """A header list of (bytes, bytes) tuples only, as devamb's HTTP/2 code makes them (from
    h2's events, or from such a list): h2 does not check nor copy it before encoding it, and
    h2conn's `header` finds a header by name through an index (a call looks its headers up
    ~15 times). Added to by appends: a list made from a kept one carries its `Fields` while
    its length is that of the pairs (`fields_of`); any other change forgets what was known of
    them (`_changed`), so a same-length edit is never read through a stale index or Fields."""

    _index: dict[bytes, bytes] | None = None
    _indexed = -1  # the length the index was built at
    _fields: Fields | None = None  # what is known of the pairs it was made with

    def first(self, name: bytes) -> bytes | None:
        """The value of the first header `name`, through an index built again only when
        the list has grown since (the index of its Fields, while it carries them)."""
        fields = self._fields
        if fields is not None and fields.length == len(self):
            index = fields.index
            if index is None:
                index = fields.index = dict(reversed(fields.pairs))
            return index.get(name)
        index = self._index
        if index is None or self._indexed != len(self):
            index = self._index = dict(reversed(self))  # (the first of a name wins)
            self._indexed = len(self)
        return index.get(name)

    def _changed(self) -> None:
        """A change other than an append: what was known of the pairs is forgotten (the
        checks by length above hold for appends only)."""
        self._fields = self._index = None

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._changed()
        super().__delitem__(key)

    def insert(self, index: Any, value: tuple[bytes, bytes]) -> None:
        self._changed()
        super().insert(index, value)

    def pop(self, index: Any = -1) -> tuple[bytes, bytes]:
        self._changed()
        return super().pop(index)

    def remove(self, value: tuple[bytes, bytes]) -> None:
        self._changed()
        super().remove(value)

    def clear(self) -> None:
        self._changed()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._changed()
        super().reverse()


def fields_of(headers: Any) -> Fields | None:
    """The Fields of a BytesPairs made from kept pairs and not added to since; else None."""
    if type(headers) is BytesPairs:
        fields = headers._fields
        if fields is not None and fields.length == len(headers):
            return fields
    return None


def kept(pairs: Iterable[tuple[bytes, bytes]]) -> BytesPairs:
    """A BytesPairs of `pairs` (bytes pairs) with Fields of its own: for a list devamb makes
    once and reuses (then copies of it carry the same Fields: `copied`)."""
    out = BytesPairs(pairs)
    out._fields = Fields(tuple(out))
    return out


def copied(fields: Fields) -> BytesPairs:
    """A new BytesPairs of the pairs of `fields` (a caller may add to it), carrying them."""
    out = BytesPairs(fields.pairs)
    out._fields = fields
    return out


def utf8_encode_headers(headers: Iterable[Any]) -> list[Any]:
    if type(headers) is BytesPairs:
        return headers
    out = list(headers)
    for pair in out:
        if type(pair) is not tuple or type(pair[0]) is not bytes or type(pair[1]) is not bytes:
            return _utf8_encode_headers(out)  # text, or hpack's HeaderTuples: h2's own
    return out


_authority_from_headers = h2.utilities.authority_from_headers


def authority_from_headers(headers: Any) -> bytes | None:
    """h2's scan for a request's :authority (a client stream keeps it), through the index of
    a BytesPairs list (devamb's upstream requests, the same list call after call)."""
    if type(headers) is BytesPairs:
        return headers.first(b":authority")
    return _authority_from_headers(headers)


class Config(h2.config.H2Configuration):
    """h2's configuration with its options as plain attributes: h2 reads them ~18 times per
    relayed request, each through a Python descriptor or property. The values are checked
    by h2's own constructor first, as h2 would."""

    client_side = True
    header_encoding = None
    validate_outbound_headers = True
    normalize_outbound_headers = True
    split_outbound_cookies = False
    validate_inbound_headers = True
    normalize_inbound_headers = True

    def __init__(self, **options: Any) -> None:
        h2.config.H2Configuration(**options)  # raises for a value h2 refuses
        super().__init__(**options)
        if options.get("logger") is None:
            self.logger = QUIET  # type: ignore[assignment]


class QuietLogger:
    """h2's DummyLogger, its methods C calls: h2 calls `logger.debug(fmt, *args)` ~25 times
    and `trace` ~8 times per relayed call, each a Python call that does nothing. `"".format`
    takes any arguments and gives "" (the arguments are not formatted)."""

    debug = trace = "".format


QUIET = QuietLogger()


class _AllowedIds(dict[Any, Any]):
    """h2.connection's AllowedStreamIDs(value) (an Enum call in Python, for every stream's
    HEADERS sent or received) as a dict lookup; its members as before."""

    __call__ = dict.__getitem__
    EVEN = h2.connection.AllowedStreamIDs.EVEN
    ODD = h2.connection.AllowedStreamIDs.ODD


_build_flags = h2.stream.H2Stream._build_hdr_validation_flags
_FLAGS: dict[tuple[type, object], Any] = {}


def build_hdr_validation_flags(self: h2.stream.H2Stream, events: Any) -> Any:
    """h2's HeaderValidationFlags (an immutable tuple) for a header block, a function of the
    kind of its first event and the side: built once per pair (h2 built it per block)."""
    key = (type(events[0]), self.state_machine.client)
    flags = _FLAGS.get(key)
    if flags is None:
        flags = _FLAGS[key] = _build_flags(self, events)
    return flags


_build_frames = h2.stream.H2Stream._build_headers_frames


def build_headers_frames(self: h2.stream.H2Stream, headers: Any, encoder: Any,
                         first_frame: Any, hdr_validation_flags: Any) -> list[Any]:
    """h2's, when h2 neither normalizes nor validates outbound headers (devamb's endpoints:
    h2hpack normalizes): a block that fits one frame (every block a relay sends, in practice)
    goes in `first_frame` without h2's slicing comprehension, END_HEADERS set in C; a longer
    one is sliced into CONTINUATIONs as h2 does."""
    config = self.config
    if config.normalize_outbound_headers or config.validate_outbound_headers:
        return _build_frames(self, headers, encoder, first_frame, hdr_validation_flags)
    return headers_frames(self, encoder.encode(headers), first_frame)


def headers_frames(self: h2.stream.H2Stream, encoded: bytes, first_frame: Any) -> list[Any]:
    """An encoded header block in `first_frame` and as many CONTINUATIONs as it takes (h2's
    slicing, without its comprehension for a block that fits one frame), END_HEADERS set."""
    size = self.max_outbound_frame_size or 0
    if 0 < len(encoded) <= size:
        first_frame.data = encoded
        set.add(first_frame.flags, "END_HEADERS")  # (FrameFlags: valid for both kinds)
        return [first_frame]
    blocks = [encoded[i:i + size] for i in range(0, len(encoded), size)]  # (h2's)
    first_frame.data = blocks[0]
    frames = [first_frame]
    for block in blocks[1:]:
        continuation = hyperframe.frame.ContinuationFrame(self.stream_id)
        continuation.data = block
        frames.append(continuation)
    frames[-1].flags.add("END_HEADERS")
    return frames


_MAX_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
_settings_max_streams: Any = h2.settings.Settings.__dict__["max_concurrent_streams"]


def max_concurrent_streams(self: h2.settings.Settings) -> int:
    """h2's Settings.max_concurrent_streams (read for every stream opened), without the
    MutableMapping.get and __getitem__ calls."""
    values = self._settings.get(_MAX_STREAMS)
    value = values[0] if values else None
    return 2**32 + 1 if value is None else value


def _hash_by_identity() -> None:
    enums = (h2.connection.ConnectionState, h2.connection.ConnectionInputs,
             h2.stream.StreamInputs)
    for enum in enums:
        type.__setattr__(enum, "__hash__", object.__hash__)
    tables: tuple[Any, ...] = (h2.connection.H2ConnectionStateMachine._transitions,
                               h2.stream._transitions)
    for table in tables:
        items = list(table.items())
        table.clear()
        table.update(items)


_connection_input = h2.connection.H2ConnectionStateMachine.process_input
_STAYS: frozenset[tuple[Any, Any]] = frozenset()  # (state, input): no change, no event


def connection_process_input(self: h2.connection.H2ConnectionStateMachine,
                             input_: Any) -> list[Any]:
    """h2's connection state machine, asked for every frame sent or received: an input that
    leaves an open connection as it is and makes no event (all of a relayed call's) answers
    at once; any other goes through h2's own (which raises for a bad one)."""
    if (self.state, input_) in _STAYS:
        return []
    return _connection_input(self, input_)


_stream_input = h2.stream.H2StreamStateMachine.process_input
_STREAM_STEPS: dict[tuple[Any, Any], tuple[Any, Any]] = h2.stream._transitions
_StreamInputs = h2.stream.StreamInputs
_StreamClosed = h2.stream.StreamState.CLOSED
_ProtocolError = h2.exceptions.ProtocolError


def stream_process_input(self: h2.stream.H2StreamStateMachine, input_: Any) -> list[Any]:
    """h2's stream state machine (~14 inputs per relayed call), without its isinstance check
    for inputs that have a transition (all of them StreamInputs: the table's keys are); an
    input with none goes through h2's own, which raises h2's error."""
    step = _STREAM_STEPS.get((self.state, input_))
    if step is None:
        return _stream_input(self, input_)
    func, target = step
    previous = self.state
    self.state = target
    if func is None:
        return []
    try:
        return func(self, previous)
    except _ProtocolError:
        self.state = _StreamClosed
        raise
    except AssertionError as err:  # (h2's)
        self.state = _StreamClosed
        raise _ProtocolError(err) from err


_INITIAL_WINDOW = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
_settings_initial_window: Any = h2.settings.Settings.__dict__["initial_window_size"]


def initial_window_size(self: h2.settings.Settings) -> int:
    """h2's Settings.initial_window_size (read twice for every stream begun), without the
    __getitem__ call."""
    value = self._settings[_INITIAL_WINDOW][0]
    if value is None:  # (h2's: a setting received but not yet acknowledged)
        raise KeyError
    return value


def install() -> None:
    global _STAYS
    _hash_by_identity()
    _STAYS = frozenset(key for key, (func, target) in
                       h2.connection.H2ConnectionStateMachine._transitions.items()
                       if func is None and target is key[0])
    h2.connection.H2ConnectionStateMachine.process_input = (  # type: ignore[method-assign]
        connection_process_input)
    h2.stream.H2Stream._build_hdr_validation_flags = (  # type: ignore[method-assign]
        build_hdr_validation_flags)
    h2.stream.H2Stream._build_headers_frames = (  # type: ignore[method-assign]
        build_headers_frames)
    settings: Any = h2.settings.Settings
    settings.max_concurrent_streams = property(max_concurrent_streams,
                                               _settings_max_streams.fset)
    settings.initial_window_size = property(initial_window_size,
                                            _settings_initial_window.fset)
    h2.stream.H2StreamStateMachine.process_input = (  # type: ignore[method-assign]
        stream_process_input)
    hyperframe.frame.Flags = FrameFlags  # type: ignore[misc,assignment]  # Frame.__init__ makes it
    hyperframe.frame.HeadersFrame.__init__ = headers_init  # type: ignore[method-assign]
    hyperframe.frame.DataFrame.__init__ = data_init  # type: ignore[method-assign]
    hyperframe.frame.Frame.serialize = serialize  # type: ignore[method-assign]
    hyperframe.frame.Frame.parse_flags = parse_flags  # type: ignore[method-assign]
    h2.stream.utf8_encode_headers = utf8_encode_headers
    h2.stream.authority_from_headers = authority_from_headers
    h2.frame_buffer.FrameBuffer.__next__ = next_frame  # type: ignore[method-assign]
    allowed = h2.connection.AllowedStreamIDs
    if not isinstance(allowed, _AllowedIds):  # (install may run twice)
        h2.connection.AllowedStreamIDs = _AllowedIds(  # type: ignore[misc,assignment]
            {key: allowed(key) for key in (0, 1, False, True)})
