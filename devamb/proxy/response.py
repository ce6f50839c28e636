"""Responses the front end sends: whole (`Response`) or streamed (`StreamResponse`).

A target either returns a `Response` that the front end sends once the handler is done, or
prepares a `StreamResponse` itself and writes the body as it goes. Framing follows the head:
a Content-Length is kept, otherwise HTTP/1.1 clients get chunked encoding and HTTP/1.0 clients
a body that ends with the connection. A response of known length sends its head with the first
body bytes: one write instead of two (a loopback write costs a context switch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from devamb.control.reasons import REASONS
from devamb.inspect.exchange import WireFields

if TYPE_CHECKING:
    from devamb.proxy.filters import ResponseFilter
    from devamb.proxy.request import FrontRequest

NO_BODY = frozenset({204, 304})
CHUNKED = b"Transfer-Encoding: chunked"

HeadersInit = Mapping[str, str] | Iterable[tuple[str, str]] | None


def status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"


def has_body(status: int, method: str) -> bool:
    return method != "HEAD" and status not in NO_BODY and status >= 200


class StreamResponse:
    """A response whose body the target writes as it has it.

    When the service installed a response filter on the request (proxy/filters.py), the head,
    every body chunk and the end pass through it, whoever writes them.
    """

    _filter: ResponseFilter | None = None  # set by `prepare` when the request carries one

    def __init__(
        self,
        status: int = 200,
        *,
        headers: HeadersInit = None,
        lines: bytes | None = None,
        length: bool = False,
    ) -> None:
        """`lines`: a relayed response's header lines as bytes (instead of `headers`: see
        proxy.headers.upstream_response_lines), with `length` saying whether they hold a
        Content-Length. Left as they are, they are written without a str per header;
        `headers` turns them into a CIMultiDict when asked (a filter, a fault): the same
        response, with that step done only when something needs it."""
        self.status = status
        self._headers: CIMultiDict[str] | None = (
            CIMultiDict(headers or ()) if lines is None else None)
        self._lines = lines
        self._length = length
        self.parsed = lines is not None  # the headers came out of llhttp: no line breaks
        self.prepared = False
        self.finished = False
        self.keep_alive = True  # False: the connection closes after this response
        self.detached = False  # True: the connection left HTTP (an upgrade) and is not ours
        self._request: FrontRequest | None = None
        self._head: bytes | None = None  # held back until the first body bytes
        self._chunked = False
        self._body = True

    @property
    def headers(self) -> CIMultiDict[str]:
        headers = self._headers
        if headers is None:
            lines, self._lines = self._lines or b"", None
            headers = self._headers = CIMultiDict(WireFields(lines))
        return headers

    @headers.setter
    def headers(self, value: CIMultiDict[str]) -> None:
        self._headers, self._lines = value, None

    def force_close(self) -> None:
        self.keep_alive = False

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        if value is None:
            self.headers.popall("Content-Length", None)
        else:
            self.headers["Content-Length"] = str(value)

    async def prepare(self, request: FrontRequest) -> None:
        """Decide the framing and send the head (or hold it for the first body bytes)."""
        if self.prepared:
            return
        self.prepared = True
        self._request = request
        status = self.status
        self._body = has_body(status, request.method)
        lines = self._lines
        if lines is not None and request.response_filter is None and status >= 200 \
                and status not in NO_BODY:
            head = self._relayed_head(request, lines)
            if self._length and self._body:
                self._head = head  # leaves with the first body bytes
            else:
                await request.connection.send(head)
            return
        headers = self.headers
        fixed = "Content-Length" in headers
        if self.status in NO_BODY or self.status < 200:
            headers.popall("Content-Length", None)
            headers.popall("Transfer-Encoding", None)
            fixed = True
        elif not fixed:
            headers.popall("Transfer-Encoding", None)
            if request.version >= (1, 1):
                self._chunked = True
                headers["Transfer-Encoding"] = "chunked"
            else:
                self.keep_alive = False  # the body ends with the connection
        keep = self.keep_alive and request.keep_alive
        self.keep_alive = keep
        if not keep:
            headers["Connection"] = "close"
        elif request.version < (1, 1):
            headers["Connection"] = "keep-alive"
        if request.response_filter is not None:
            self._filter = request.response_filter
            await self._filter.on_head(self)
        head = _head_bytes(self.status, headers, checked=self.parsed)
        if fixed and self._body:
            self._head = head  # leaves with the first body bytes
        else:
            await request.connection.send(head)

    def _relayed_head(self, request: FrontRequest, lines: bytes) -> bytes:
        """`prepare` for relayed header lines nobody asked to see as text: the same framing
        decisions, made on the bytes, and the head made from them."""
        if not self._length:
            if request.version >= (1, 1):
                self._chunked = True
                lines = lines + b"\r\n" + CHUNKED if lines else CHUNKED
            else:
                self.keep_alive = False  # the body ends with the connection
        keep = self.keep_alive and request.keep_alive
        self.keep_alive = keep
        extra = b"" if keep and request.version >= (1, 1) else (
            b"Connection: close" if not keep else b"Connection: keep-alive")
        if extra:
            lines = lines + b"\r\n" + extra if lines else extra
        status = self.status
        line = _STATUS_LINES.get(status) or _status_line_bytes(status)
        return line + lines + b"\r\n\r\n" if lines else line + b"\r\n"

    def at_once(self, request: FrontRequest) -> bool:
        """Whether `send_whole` may send it: relayed fields nobody asked to see as text, no
        response filter, a status with a body."""
        status = self.status
        return (self._lines is not None and not self.prepared
                and request.response_filter is None and status >= 200 and status not in NO_BODY)

    def send_whole(self, request: FrontRequest, body: Sequence[bytes | memoryview]) -> bool:
        """`prepare`, `write` of each of `body`'s parts and `write_eof` in one step and one
        write, when none of them has anything to wait for (`at_once`). Returns whether the
        client's socket buffer is full: `drain` it before the next response."""
        lines = self._lines
        status = self.status
        assert lines is not None
        self.prepared = self.finished = True
        self._request = request
        self._body = body_sent = request.method != "HEAD" and status not in NO_BODY \
            and status >= 200  # (has_body, inline)
        parts: list[bytes | memoryview] = [self._relayed_head(request, lines)]
        if body_sent:
            if self._chunked:
                for part in body:
                    if part:
                        parts += (b"%x\r\n" % len(part), part, b"\r\n")
                parts.append(b"0\r\n\r\n")
            else:
                parts += body
        return request.connection.write_now(parts)

    async def write(self, data: bytes | memoryview) -> None:
        """`data`: bytes, or a view of an upstream connection's read buffer (a filter is
        given its own copy of one: it may keep what it is given)."""
        if not data or not self._body:
            return
        if self._filter is not None:
            await self._filter.on_data(data if type(data) is bytes else bytes(data), self._send)
        elif self._framed(data):
            await self.drain()

    @property
    def filtered(self) -> bool:
        """Whether a response filter sees the body (then `write`, never `write_nowait`)."""
        return self._filter is not None

    def write_nowait(self, data: bytes | memoryview) -> bool:
        """`write` without a coroutine, for a response no filter sees (`filtered`): write, and
        say whether the client's socket buffer is full (then `drain` before writing more).
        What a relayed body's every chunk goes through: `write` and the connection's `send`
        are two coroutines a chunk for the same steps."""
        if not data or not self._body:
            return False
        return self._framed(data)

    async def drain(self) -> None:
        """Wait while the client's socket buffer is full (after `write_nowait` said so)."""
        await self._request.connection.drain()  # type: ignore[union-attr]

    async def _send(self, data: bytes) -> None:
        """Body bytes past the filter (never empty): written framed, waiting while the
        client's socket buffer is full."""
        if self._framed(data):
            await self.drain()

    def _framed(self, data: bytes | memoryview) -> bool:
        """Write body bytes (not empty) framed, the head first if it has not gone yet; whether
        the client's socket buffer is full (then `drain` before writing more)."""
        connection = self._request.connection  # type: ignore[union-attr]
        if self._head is not None:
            head, self._head = self._head, None
            return connection.write_now((head, data))
        if self._chunked:
            return connection.write_now((b"%x\r\n" % len(data), data, b"\r\n"))
        return connection.write_now((data,))

    async def write_eof(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._filter is not None:
            await self._filter.on_end(self._send)
        connection = self._request.connection  # type: ignore[union-attr]
        if self._head is not None:
            head, self._head = self._head, None
            await connection.send(head)
        if self._chunked and self._body:
            await connection.send(b"0\r\n\r\n")

    async def complete(self, request: FrontRequest) -> None:
        """Send what is not sent yet: the head, and the end (as the front end does)."""
        if not self.prepared:
            await self.prepare(request)
        await self.write_eof()


class Response(StreamResponse):
    """A response whose whole body is known when it is made."""

    def __init__(
        self,
        status: int = 200,
        *,
        body: bytes = b"",
        text: str | None = None,
        headers: HeadersInit = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(status, headers=headers)
        if text is not None:
            body = text.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        if status not in NO_BODY and status >= 200:
            self.headers["Content-Length"] = str(len(body))

    async def send(self, request: FrontRequest) -> None:
        await self.prepare(request)
        await self.write(self.body)
        await self.write_eof()

    async def complete(self, request: FrontRequest) -> None:
        if not self.prepared:
            await self.prepare(request)
            await self.write(self.body)
        await self.write_eof()


_STATUS_LINES: dict[int, bytes] = {}


def _status_line_bytes(status: int) -> bytes:
    line = _STATUS_LINES[status] = status_line(status).encode("latin-1")
    return line


def _head_bytes(status: int, headers: CIMultiDict[str], *, checked: bool = False) -> bytes:
    try:
        fields = "\r\n".join(map(": ".join, headers.items()))  # one C loop, no f-string each
    except TypeError:  # a value that is not a string (a mock's number, say)
        fields = "\r\n".join([f"{name}: {value}" for name, value in headers.items()])
    if not checked and not fields.count("\n") == fields.count("\r") == max(len(headers) - 1, 0):
        raise ValueError("a response header holds a line break")  # one per line, no more
    text = f"{status_line(status)}{fields}\r\n\r\n" if fields else f"{status_line(status)}\r\n"
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a mock's rendered header: send it as UTF-8, as aiohttp did
        return text.encode()
