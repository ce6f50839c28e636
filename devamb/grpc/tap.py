"""The record of one gRPC call, fed by the HTTP/2 listener as the call passes: messages each
way (framed, counted, the first MAX_KEPT each way decoded), grpc-status and grpc-message from
the trailers (or from the headers of a trailers-only response). It fills
`exchange.notes["grpc"]` in place, so a call in flight shows what passed so far."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from devamb.grpc.framing import DEFAULT_LIMIT, PREFIX, Splitter
from devamb.grpc.messages import fill
from devamb.grpc.path import is_grpc, split_path
from devamb.grpc.schema import Schema
from devamb.grpc.status import name_of
from devamb.proxy.h2conn import header, lookup

MAX_KEPT = 50  # messages recorded each way; later ones are only counted
Headers = list[tuple[bytes, bytes]]


class GrpcTap:
    def __init__(self, notes: dict[str, Any], path: str | None, request_encoding: str | None):
        service, method = split_path(path) or ("", "")
        self.service = service
        self.method = method
        self.note: dict[str, Any] = {
            "service": service, "method": method, "status": None, "code": None,
            "message": "", "requests": 0, "responses": 0, "messages": [], "schema": "raw",
        }
        notes["grpc"] = self.note
        self._encodings = {"request": request_encoding, "response": None}
        self._splitters: dict[str, Splitter] = {}  # made with a direction's first DATA
        self._kept = {"request": 0, "response": 0}
        self._types: dict[str, str | None] = {"request": None, "response": None}
        self._schema: Schema | None = None
        self._decided = False
        # (a message's item and bytes) waiting for a schema
        self._pending: list[tuple[dict[str, Any], bytes | None]] = []
        self.waiting: asyncio.Future[Any] | None = None  # the reflection it waits for

    @classmethod
    def open(cls, notes: dict[str, Any], headers: Headers) -> GrpcTap | None:
        """A tap for a call whose request `headers` say gRPC; None for other HTTP/2 calls."""
        if not is_grpc(header(headers, b"content-type")):
            return None
        return cls(notes, header(headers, b":path"), header(headers, b"grpc-encoding"))

    @property
    def decided(self) -> bool:
        return self._decided

    def use(self, schema: Schema | None) -> None:
        """Decode with `schema` (None: raw), including the messages that waited for it."""
        self._decided = True
        types = schema.method_types(self.service, self.method) if schema is not None else None
        if schema is not None and types is not None:
            self._schema = schema
            self._types = {"request": types[0], "response": types[1]}
            self.note["schema"] = schema.origin
        for item, data in self._pending:
            self._fill(item, data)
        self._pending.clear()

    # -- fed by the listener ----------------------------------------------------------------

    def request_data(self, data: bytes) -> None:
        self._data("request", data)

    def response_data(self, data: bytes) -> None:
        self._data("response", data)

    def response_headers(self, headers: Headers) -> None:
        """The response's HEADERS; a trailers-only response carries grpc-status in them."""
        get = lookup(headers)
        self._encodings["response"] = get(b"grpc-encoding")
        self._status(get)

    def trailers(self, headers: Headers) -> None:
        self._status(lookup(headers))

    def close(self) -> None:
        """The call ended: messages still waiting for a schema are decoded raw."""
        if not self._decided:
            self.use(None)

    # -- inside ------------------------------------------------------------------------------

    def _status(self, get: Callable[[bytes], str | None]) -> None:
        """grpc-status and grpc-message from a header list's look-up (h2conn.lookup)."""
        status = get(b"grpc-status")
        if status is None:
            return
        number = int(status) if status.strip().isdigit() else None
        self.note["status"] = number
        self.note["code"] = None if number is None else name_of(number)
        message = get(b"grpc-message") or ""
        self.note["message"] = unquote(message) if "%" in message else message  # (unquote's)

    def _data(self, direction: str, data: bytes) -> None:
        splitter = self._splitters.get(direction)
        if splitter is None:  # (no message begun this way: one whole message, as a unary
            size = int.from_bytes(data[1:PREFIX], "big")  # call's DATA, needs no splitter)
            if len(data) == PREFIX + size and size <= DEFAULT_LIMIT:
                self._message(direction, size, bool(data[0] & 1), bytes(data[PREFIX:]))
                return
            splitter = self._splitters[direction] = Splitter()
        for frame in splitter.feed(data):
            self._message(direction, frame.size, frame.compressed, frame.data)

    def _message(self, direction: str, size: int, compressed: bool, data: bytes | None
                 ) -> None:
        """One message (`data` None: too large to keep), counted, and recorded while fewer
        than MAX_KEPT were this way: decoded now, or once the call's schema is known."""
        note = self.note
        if direction == "request":
            note["requests"] += 1
        else:
            note["responses"] += 1
        kept = self._kept
        if kept[direction] >= MAX_KEPT:
            return
        kept[direction] += 1
        item: dict[str, Any] = {"dir": direction, "size": size, "compressed": compressed,
                                "type": None, "json": None, "raw": None, "error": None}
        note["messages"].append(item)
        if self._decided:
            fill(item, data, self._types[direction], self._schema, self._encodings[direction])
        else:
            self._pending.append((item, data))

    def _fill(self, item: dict[str, Any], data: bytes | None) -> None:
        direction = item["dir"]
        fill(item, data, self._types[direction], self._schema, self._encodings[direction])
