"""One exchange: an HTTP request/response or one TCP connection, as recorded."""

from __future__ import annotations

import base64
import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from time import perf_counter
from time import time as wall_clock
from typing import Any, Protocol

from devamb.control.protocol import ExchangeSummary

DEFAULT_PREVIEW = 64 * 1024
RECORD_OVERHEAD = 600  # bytes a compact (lazy) record is counted as (not measured again)
# What an `Exchange` costs besides its previews' and headers' text, and each recorded header
# besides its text (a tuple and two str objects in a list), as the allocator hands them out:
# a deep sys.getsizeof walk of the HTTP 1 KiB records of bench/run.py (12 headers, 300 bytes of
# header text, 1 KiB of preview) gave ~4.4 KB a record, tracemalloc ~4.9 KB; counting 600 bytes
# a record and 16 a header (~2.1 KB) let the store hold twice its budget in small records.
EXCHANGE_OVERHEAD = 1400
HEADER_OVERHEAD = 180
# recorded headers kept as the relay wrote them (WireFields): its object and one bytes object
WIRE_FIELDS_OVERHEAD = 96
MESSAGE_PREVIEW = 1024  # bytes kept of each WebSocket message (at most the body preview's limit)
MAX_MESSAGES = 1000  # WebSocket messages kept per exchange; later ones are only counted
MESSAGE_OVERHEAD = 120  # bytes a kept message costs besides its preview
GRPC_KEPT = 64 * 1024  # a gRPC message larger than this is sized, not kept (grpc.framing)
OPCODES = {0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


class BodyPreview:
    """The first `limit` bytes of a streamed body plus its full size; never holds more."""

    __slots__ = ("data", "limit", "size")

    def __init__(self, limit: int = DEFAULT_PREVIEW) -> None:
        self.data = bytearray()
        self.limit = limit
        self.size = 0

    def add(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:  # a view of the chunk's head: no copy besides the preview's own
            self.data += memoryview(chunk)[:room] if len(chunk) > room else chunk

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)

    def ended_at(self, size: int) -> None:
        """The body was cut after `size` bytes: forget what was added past them."""
        if size < self.size:
            self.size = size
            del self.data[size:]


Headers = list[tuple[str, str]]


class _NoneYet(list):
    """The empty list a record's `faults` and `retried` are until something is noted: one
    object every record shares. A list of each per record (GC-tracked objects, traversed by
    every collection while the store holds the record) cost ~2.8 % of a proxied exchange's
    instructions. Immutable, so that a record's own list is assigned, never this one changed
    (`exchange.retried = [*exchange.retried, why]`)."""

    __slots__ = ()

    def _shared(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("a record's shared empty list: assign a new list instead")

    append = extend = insert = remove = pop = clear = sort = reverse = _shared
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _shared
    __hash__ = object.__hash__  # type: ignore[assignment]  # (immutable: a dataclass default)


NONE_YET: list[str] = _NoneYet()


class _NoNotes(dict):
    """The empty `notes` every record shares until a target notes something (as `NONE_YET`):
    an empty dict each was 64 bytes of every record the store holds (pymalloc blocks, between
    the next records'). Immutable: writers take the record's own dict from
    `Exchange.own_notes()`, which makes it at the first note."""

    __slots__ = ()

    def _shared(self, *_args: Any, **_kwargs: Any) -> Any:
        raise TypeError("a record's shared empty notes: write through Exchange.own_notes()")

    __setitem__ = __delitem__ = __ior__ = _shared
    setdefault = pop = popitem = update = clear = _shared
    __hash__ = object.__hash__  # type: ignore[assignment]  # (immutable: a dataclass default)


NO_NOTES: dict[str, Any] = _NoNotes()


class WireFields(Sequence[tuple[str, str]]):
    """Header fields kept as the bytes the relay wrote, read as text pairs.

    `block` is the head's field lines as they went on the wire (`Name: value`, joined by CRLF),
    one bytes object where a list of str pairs is two strings and a tuple per header: most
    records are never opened, and the store holds thousands. Decoded (latin-1, as HTTP/1.1
    headers are) the first time someone reads them.
    """

    __slots__ = ("_text", "block")

    def __init__(self, block: bytes) -> None:
        self.block = block
        self._text: Headers | None = None

    def _decoded(self) -> Headers:
        text = self._text
        if text is None:
            lines = self.block.decode("latin-1").split("\r\n") if self.block else []
            text = self._text = [(name, value) for name, _, value in
                                 (line.partition(": ") for line in lines)]
        return text

    def __getitem__(self, index: Any) -> Any:  # (an int or a slice, as a list takes)
        return self._decoded()[index]

    def __len__(self) -> int:
        block = self.block
        return block.count(b"\r\n") + 1 if block else 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WireFields):
            return self.block == other.block
        return isinstance(other, list) and self._decoded() == other

    __hash__ = None  # type: ignore[assignment]  # (as a list's)

    def __repr__(self) -> str:
        return repr(self._decoded())


RecordedHeaders = Headers | WireFields


class TryLimits(Protocol):
    """What the current try of an exchange may take (a `devamb.policies.request.AttemptLimits`,
    set by the service's request policy: that layer is above this one)."""

    @property
    def timeout(self) -> float: ...  # s until response headers, from when the request was sent

    @property
    def connect_timeout(self) -> float | None: ...

    @property
    def retry_statuses(self) -> frozenset[int]: ...  # upstream statuses that end the try

    @property
    def tried(self) -> set[str]: ...  # endpoints earlier tries used (a pool avoids them)
@dataclass(frozen=True, slots=True)
class WsMessage:
    """One WebSocket message (or control frame) as it was relayed."""

    direction: str  # "upstream" (client -> upstream) | "downstream" (upstream -> client)
    opcode: int  # 1 text, 2 binary, 8 close, 9 ping, 10 pong
    size: int  # payload bytes on the wire (a deflated message's compressed size)
    preview: bytes  # the payload's first bytes, unmasked and inflated
    time: float  # unix time the message ended
    truncated: bool = False  # the preview is not the whole payload
    compressed: bool = False  # sent with permessage-deflate

    @property
    def type(self) -> str:
        return OPCODES.get(self.opcode, f"opcode {self.opcode}")

    def to_json(self, preview: bytes | None = None) -> dict[str, Any]:
        """JSON-able: text as text (a close frame's reason, with its code), else base64;
        `preview` replaces the recorded one (masked, say)."""
        data: dict[str, Any] = {
            "direction": self.direction, "type": self.type, "opcode": self.opcode,
            "size": self.size, "time": self.time, "truncated": self.truncated,
        }
        if self.compressed:
            data["compressed"] = True
        preview = self.preview if preview is None else preview
        if self.opcode == 0x8 and len(preview) >= 2:
            data["code"] = int.from_bytes(preview[:2])
            preview = preview[2:]
        text = None if self.opcode == 0x2 else _utf8(preview, self.truncated)
        if text is None:
            data["data"], data["encoding"] = base64.b64encode(preview).decode("ascii"), "base64"
        else:
            data["data"], data["encoding"] = text, "utf-8"
        return data


def _utf8(data: bytes, truncated: bool) -> str | None:
    """UTF-8 text, or None; a cut preview may end inside a character (that tail is dropped)."""
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=not truncated)
    except UnicodeDecodeError:
        return None


class MessageLog:
    """A WebSocket session's messages, both directions in order; the first `limit` are kept."""

    __slots__ = ("dropped", "items", "limit", "preview_bytes")

    def __init__(self, limit: int = MAX_MESSAGES) -> None:
        self.items: list[WsMessage] = []
        self.limit = limit
        self.dropped = 0  # messages after the first `limit`: counted, not kept
        self.preview_bytes = 0

    def add(self, message: WsMessage) -> None:
        if len(self.items) < self.limit:
            self.items.append(message)
            self.preview_bytes += len(message.preview)
        else:
            self.dropped += 1

    def __len__(self) -> int:
        return len(self.items)

    def approx_size(self) -> int:
        return self.preview_bytes + MESSAGE_OVERHEAD * len(self.items)


@dataclass(slots=True, eq=False)
class Exchange:
    id: int
    service: str
    target: str
    protocol: str  # "http" | "tcp" | "http2" | "grpc" (http2 and grpc: one exchange per stream)
    client: str
    time: float = field(default_factory=wall_clock)
    started: float = field(default_factory=perf_counter)
    method: str | None = None
    path: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    request_body: BodyPreview = field(default_factory=BodyPreview)  # client -> upstream
    response_body: BodyPreview = field(default_factory=BodyPreview)  # upstream -> client
    request_headers: RecordedHeaders | None = None  # as sent upstream
    response_headers: RecordedHeaders | None = None  # as sent to the client
    url: str | None = None  # the upstream URL or address used
    ttfb_ms: float | None = None  # until the upstream's response headers arrived
    faults: list[str] = NONE_YET  # names of the faults that fired (assigned, not appended)
    attempts: int = 1
    replay_of: int | None = None
    limits: TryLimits | None = None  # for the current try, when a request policy sets them
    body_buffer: bytes | None = None  # the request body, read whole so that retries can resend
    retried: list[str] = NONE_YET  # why each earlier try was given up (assigned, as faults)
    # what a target says: {"mock": {...}}; written through `own_notes()` (shared while empty)
    notes: dict[str, Any] = NO_NOTES
    messages: MessageLog | None = None  # a relayed WebSocket's messages, one by one
    # the store's, once it keeps the record (inspect.store, as a LazyExchange's): the bytes
    # it counts the record as, and its place in the order records completed in
    # (unset until then: nothing else reads them, and a record is made per exchange)
    size: int = field(init=False, repr=False, compare=False)
    completed: int = field(init=False, repr=False, compare=False)

    @property
    def bytes_in(self) -> int:
        return self.request_body.size

    @property
    def bytes_out(self) -> int:
        return self.response_body.size

    def own_notes(self) -> dict[str, Any]:
        """This record's own `notes`, to write in (made at the first note)."""
        notes = self.notes
        if type(notes) is _NoNotes:  # (NO_NOTES, or a copy of it: deepcopy, pickle)
            notes = self.notes = {}
        return notes

    def mark_first_byte(self) -> None:
        self.ttfb_ms = (perf_counter() - self.started) * 1000

    def finish(self, *, status: int | None = None, error: str | None = None) -> None:
        if status is not None:
            self.status = status
        if error is not None and self.error is None:
            self.error = error
        self.duration_ms = (perf_counter() - self.started) * 1000

    def approx_size(self) -> int:
        """What keeping this record costs, for the store's byte budget."""
        size = EXCHANGE_OVERHEAD + len(self.request_body.data) + len(self.response_body.data)
        if self.messages is not None:
            size += self.messages.approx_size()
        call = self.notes.get("grpc") if self.notes else None
        if call is not None:  # decoded messages: about twice their wire size as Python values
            for message in call["messages"]:  # (a loop, not sum over a generator: a call's 2)
                size += MESSAGE_OVERHEAD + (0 if message["size"] > GRPC_KEPT
                                            else 2 * message["size"])
        sent, answered = self.request_headers, self.response_headers
        if type(sent) is WireFields and type(answered) is WireFields:  # a relayed exchange's
            return size + len(sent.block) + len(answered.block) + 2 * WIRE_FIELDS_OVERHEAD
        for headers in (sent, answered):
            if type(headers) is WireFields:  # (not isinstance: an ABC's check is slow)
                size += len(headers.block) + WIRE_FIELDS_OVERHEAD  # one bytes object
            elif headers:  # the strings' lengths, joined in C, plus the objects holding them
                size += len("".join(chain.from_iterable(headers))) + HEADER_OVERHEAD * len(headers)
        return size

    def to_json(self) -> ExchangeSummary:
        summary: ExchangeSummary = {
            "id": self.id,
            "time": self.time,
            "service": self.service,
            "target": self.target,
            "protocol": self.protocol,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "error": self.error,
            "client": self.client,
        }
        if self.protocol != "tcp":  # http, http2, grpc
            summary["method"] = self.method or ""
            summary["path"] = self.path or ""
            summary["status"] = self.status
        if self.faults:
            summary["faults"] = list(self.faults)
        if self.replay_of is not None:
            summary["replay_of"] = self.replay_of
        if self.notes:
            summary["notes"] = {key: _light(key, note) for key, note in self.notes.items()}
        return summary

    def detail(self) -> dict[str, Any]:
        """Everything recorded, unredacted: callers pass it through a Redaction before output."""
        data: dict[str, Any] = dict(self.to_json())
        data.update(
            url=self.url,
            ttfb_ms=None if self.ttfb_ms is None else round(self.ttfb_ms, 3),
            attempts=self.attempts,
            retried=list(self.retried),
            faults=list(self.faults),
            request_headers=[list(h) for h in self.request_headers or []],
            response_headers=[list(h) for h in self.response_headers or []],
            request_body=bytes(self.request_body.data),
            request_body_size=self.request_body.size,
            response_body=bytes(self.response_body.data),
            response_body_size=self.response_body.size,
        )
        if self.notes:
            data["notes"] = dict(self.notes)  # whole, the decoded gRPC messages included
        if self.messages is not None:
            data["messages"] = [m.to_json() for m in self.messages.items]
            data["messages_dropped"] = self.messages.dropped
        return data


def _light(key: str, note: Any) -> Any:
    """A note as every exchange event carries it: a gRPC call's decoded messages stay in the
    detail (they can be many and large), its names, status and counts go with the summary."""
    if key == "grpc" and isinstance(note, dict) and "messages" in note:
        return {k: v for k, v in note.items() if k != "messages"}
    return note
