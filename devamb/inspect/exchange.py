"""One exchange: an HTTP request/response or one TCP connection, as recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from time import perf_counter
from time import time as wall_clock
from typing import Any

from devamb.control.protocol import ExchangeSummary

DEFAULT_PREVIEW = 64 * 1024
RECORD_OVERHEAD = 600  # bytes an exchange costs besides its previews and headers (measured)


class BodyPreview:
    """The first `limit` bytes of a streamed body plus its full size; never holds more."""

    __slots__ = ("data", "limit", "size")

    def __init__(self, limit: int = DEFAULT_PREVIEW) -> None:
        self.data = bytearray()
        self.limit = limit
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room] if len(chunk) > room else chunk

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)

    def ended_at(self, size: int) -> None:
        """The body was cut after `size` bytes: forget what was added past them."""
        if size < self.size:
            self.size = size
            del self.data[size:]


Headers = list[tuple[str, str]]


@dataclass(slots=True, eq=False)
class Exchange:
    id: int
    service: str
    target: str
    protocol: str  # "http" | "tcp"
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
    request_headers: Headers | None = None  # as sent upstream
    response_headers: Headers | None = None  # as sent to the client
    url: str | None = None  # the upstream URL or address used
    ttfb_ms: float | None = None  # until the upstream's response headers arrived
    faults: list[str] = field(default_factory=list)  # names of the faults that fired
    attempts: int = 1
    replay_of: int | None = None
    limits: Any = None  # policies.request.AttemptLimits for the current try, if any
    body_buffer: bytes | None = None  # the request body, read whole so that retries can resend
    retried: list[str] = field(default_factory=list)  # why each earlier try was given up
    notes: dict[str, Any] = field(default_factory=dict)  # what a target says: {"mock": {...}}

    @property
    def bytes_in(self) -> int:
        return self.request_body.size

    @property
    def bytes_out(self) -> int:
        return self.response_body.size

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
        size = RECORD_OVERHEAD + len(self.request_body.data) + len(self.response_body.data)
        for headers in (self.request_headers, self.response_headers):
            if headers:  # the strings' lengths, joined in C, plus 16 bytes a header for the rest
                size += len("".join(chain.from_iterable(headers))) + 16 * len(headers)
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
        if self.protocol == "http":
            summary["method"] = self.method or ""
            summary["path"] = self.path or ""
            summary["status"] = self.status
        if self.faults:
            summary["faults"] = list(self.faults)
        if self.replay_of is not None:
            summary["replay_of"] = self.replay_of
        if self.notes:
            summary["notes"] = dict(self.notes)
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
        return data
